"""Config loading: the repository's conf/ is valid, and every mistake names file, key and fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crm_lakehouse.config import load_settings
from crm_lakehouse.errors import ConfigError

REPO_CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture
def conf(tmp_path) -> Path:
    target = tmp_path / "conf"
    shutil.copytree(REPO_CONF, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test set-up: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_repository_config_declares_regions_channels_and_every_entity(tmp_path):
    settings = load_settings(REPO_CONF, lakehouse=str(tmp_path))
    regions = {s.region for s in settings.sources}
    channels = {s.channel for s in settings.sources if s.entity in ("customers", "orders")}
    assert {"cn", "eu", "us"} <= regions
    assert {"web", "store", "call_center", "app", "partner"} <= channels
    assert {s.entity for s in settings.sources} == {"customers", "orders", "interactions", "products", "fx_rates"}
    assert {s.format for s in settings.sources} == {"csv", "json", "parquet"}
    cn_store = settings.source("cn_store_customers")
    assert cn_store.options["encoding"] == "GB18030"
    assert cn_store.column_for("full_name") == "姓名"
    assert cn_store.cdc.operations == {"insert": "新增", "update": "修改", "delete": "删除"}
    assert settings.source("eu_store_orders").decimal_separator == ","
    assert settings.source("us_store_customers").date_format == "MM/dd/yyyy"


def test_paths_default_under_the_lakehouse_root(tmp_path):
    settings = load_settings(REPO_CONF, lakehouse=str(tmp_path / "lh"))
    assert settings.root == str(tmp_path / "lh")
    assert settings.landing == str(tmp_path / "lh" / "landing")
    assert settings.checkpoints == str(tmp_path / "lh" / "_checkpoints")
    assert settings.table_path("gold", "customer_360") == f"{tmp_path}/lh/gold/customer_360"


def test_environment_variable_sets_the_root_and_the_flag_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_LAKEHOUSE_ROOT", str(tmp_path / "from-env"))
    assert load_settings(REPO_CONF).root == str(tmp_path / "from-env")
    assert load_settings(REPO_CONF, lakehouse=str(tmp_path / "flag")).root == str(tmp_path / "flag")


def test_cluster_overlay_requires_its_storage_uri(monkeypatch):
    monkeypatch.delenv("CRM_LAKEHOUSE_ROOT", raising=False)
    with pytest.raises(ConfigError) as error:
        load_settings(REPO_CONF, env="cluster")
    message = str(error.value)
    assert "CRM_LAKEHOUSE_ROOT is not set" in message and "lakehouse.root" in message and "export" in message
    monkeypatch.setenv("CRM_LAKEHOUSE_ROOT", "s3a://crm-bucket/lake/")
    settings = load_settings(REPO_CONF, env="cluster")
    assert settings.root == "s3a://crm-bucket/lake"
    assert settings.table_path("bronze", "eu_web_orders") == "s3a://crm-bucket/lake/bronze/eu_web_orders"
    assert settings.spark.conf["spark.sql.shuffle.partitions"] == "200"


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("sources/eu.yaml", "    format: json\n    path: eu/web/customers", "    fromat: json\n    path: eu/web/customers",
         ["sources/eu.yaml: sources[0].fromat", "did you mean 'format'"]),
        ("sources/eu.yaml", "format: json\n    path: eu/web/customers", "format: xlsx\n    path: eu/web/customers",
         ["sources/eu.yaml: sources[0].format", "unsupported format 'xlsx'", "csv, json, parquet"]),
        ("sources/us.yaml", "      fullName: full_name\n", "      fullName: ful_name\n",
         ["sources/us.yaml: sources[0].mapping.fullName", "unknown customers field 'ful_name'", "did you mean 'full_name'"]),
        ("sources/cn.yaml", "region: cn\n", "region: asia\n", ["sources/cn.yaml: region", "region 'asia' is not declared"]),
        ("sources/eu.yaml", "    channel: web\n", "    channel: webshop\n",
         ["sources/eu.yaml: sources[0].channel", "unknown channel 'webshop'"]),
        ("sources/global.yaml", "      currency: currency\n", "",
         ["sources/global.yaml: sources[1].mapping", "required fx_rates fields not mapped: currency"]),
        ("base.yaml", "    timezone: Asia/Shanghai\n", "    timezone: Asia/Shang_Hai\n",
         ["base.yaml", "regions.cn.timezone", "unknown timezone 'Asia/Shang_Hai'"]),
        ("base.yaml", "  seed: 42", "  seed: forty-two", ["generator.seed", "expected int"]),
        ("sources/us.yaml", "      operation_column: operation\n", "      operation_column: op_code\n",
         ["sources/us.yaml: sources[0].cdc.operation_column", "'op_code' is not in columns"]),
        ("base.yaml", "  vacuum_retention_hours: 168", "  vacuum_retention_hours: 1",
         ["maintenance.vacuum_retention_hours", "below Delta's 168-hour safety minimum"]),
    ],
)
def test_config_mistakes_name_file_key_and_fix(conf, file, old, new, expected):
    edit(conf / file, old, new)
    with pytest.raises(ConfigError) as error:
        load_settings(conf, lakehouse="/tmp/unused")
    message = str(error.value)
    for fragment in expected:
        assert fragment in message, message
    assert "fix:" in message
    assert "\n" not in message


def test_invalid_yaml_reports_the_line(conf):
    (conf / "sources" / "eu.yaml").write_text("region: eu\nsources:\n  - name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources/eu\.yaml:\d+:\d+: invalid YAML"):
        load_settings(conf, lakehouse="/tmp/unused")


def test_customers_source_without_cdc_section_must_declare_how_it_delivers(conf):
    text = (conf / "sources" / "eu.yaml").read_text(encoding="utf-8")
    start = text.index("    cdc:\n      operation_column: op\n")
    end = text.index("  - name: eu_store_customers")
    (conf / "sources" / "eu.yaml").write_text(text[:start] + "\n" + text[end:], encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.mode: a customers source needs a mode .*mode: snapshot"):
        load_settings(conf, lakehouse="/tmp/unused")
    edit(conf / "sources" / "eu.yaml", "    entity: customers\n", "    entity: customers\n    mode: cdc\n")
    with pytest.raises(ConfigError, match="a change feed needs a cdc: section"):
        load_settings(conf, lakehouse="/tmp/unused")


def test_unknown_environment_lists_the_known_ones(conf):
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*one of: cluster, local"):
        load_settings(conf, env="prod", lakehouse="/tmp/unused")


def test_missing_config_folder_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"no base\.yaml in config folder"):
        load_settings(tmp_path / "nowhere")


def test_duplicate_source_names_are_rejected(conf):
    edit(conf / "sources" / "us.yaml", "  - name: us_store_customers", "  - name: us_web_customers")
    with pytest.raises(ConfigError, match="source name 'us_web_customers' is used twice"):
        load_settings(conf, lakehouse="/tmp/unused")
