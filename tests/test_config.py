"""Config loading: the repository's conf/ is valid, and every mistake names file, key and fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crm_lakehouse.config import load_settings
from crm_lakehouse.errors import ConfigError
from crm_lakehouse.startup import load

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
        ("base.yaml", "  interpreted_below_rows: 50000", "  interpreted_below_rows: -1",
         ["spark.interpreted_below_rows' is -1", "0 to turn it off"]),
        ("base.yaml", "  interpreted_below_rows: 50000", "  interpreted_below_rows: many",
         ["spark.interpreted_below_rows", "expected int"]),
        ("base.yaml", "  sources_at_once: 2", "  sources_at_once: 0",
         ["spark.sources_at_once' is 0", "1 or more"]),
        # An empty or too short prefix would let analysts replace the masked views.
        ("base.yaml", "  sandbox_prefix: sandbox_", "  sandbox_prefix: ana",
         ["sql.sandbox_prefix", "'ana': it would take in the schema analytics", "sandbox_"]),
        ("base.yaml", "  sandbox_prefix: sandbox_", "  sandbox_prefix: ''",
         ["sql.sandbox_prefix", "it is not a lower-case SQL name"]),
        ("base.yaml", "  sandbox_prefix: sandbox_", "  sandbox_prefix: dbt-",
         ["sql.sandbox_prefix", "it is not a lower-case SQL name"]),
        ("base.yaml", "  k_anonymity: 5", "  k_anonymity: 0", ["sql.k_anonymity' is 0", "give 1 or more"]),
    ],
)
def test_config_mistakes_name_file_key_and_fix(conf, file, old, new, expected):
    edit(conf / file, old, new)
    with pytest.raises(ConfigError) as error:
        load(conf, lakehouse="/tmp/unused")   # as every command loads it: config's checks, then the layers'
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


LOG_SOURCE = """
region: us
sources:
  - name: us_web_log
    channel: web
    entity: orders
    format: csv
    path: us/web/log
    columns: [cust, day, qty, amount]
    mapping:
      cust: source_customer_id
      day: ordered_at
      qty: quantity
      amount: line_total
      order_id: {expr: "concat(cust, '-', day)"}
      line_number: {generated: line_in_order}
      product_id: {value: CD}
"""


def refused(conf: Path, expected: list[str]) -> str:
    """The one-line ConfigError loading ``conf`` raises, checked for every expected fragment."""
    with pytest.raises(ConfigError) as error:
        load(conf, lakehouse="/tmp/unused")   # as every command loads it: config's checks, then the layers'
    message = str(error.value)
    for fragment in expected:
        assert fragment in message, message
    assert "fix:" in message and "\n" not in message
    return message


def with_source(conf: Path, text: str) -> None:
    (conf / "sources" / "zz.yaml").write_text(text, encoding="utf-8")


def test_a_transaction_log_with_constants_expressions_and_generated_keys_loads(conf):
    with_source(conf, LOG_SOURCE)
    source = load_settings(conf, lakehouse="/tmp/unused").source("us_web_log")
    assert source.mapping["order_id"].expr == "concat(cust, '-', day)"
    assert source.mapping["product_id"].value == "CD" and source.mapping["line_number"].generated == "line_in_order"
    assert source.currency == "USD" and source.customer_source == "us_web_customers"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("      product_id: {value: CD}\n", "", ["required orders fields not mapped: product_id", "{value: ...}"]),
    ("      amount: line_total\n", "", ["unit_price or line_total"]),
    ("{value: CD}", "{value: CD, expr: \"'x'\"}", ["mapping.product_id' gives value, expr", "exactly one of"]),
    ("{value: CD}", "{column: sku}", ["mapping.product_id.column", "column 'sku' is not in columns"]),
    ("{generated: line_in_order}", "{generated: row_number}", ["unknown generated value 'row_number'"]),
    ("      line_number: {generated: line_in_order}\n", "      line_number: {value: 1}\n      store_id: {generated: line_in_order}\n",
     ["generated: line_in_order is for line_number, not store_id"]),
    ("      cust: source_customer_id\n", "      cust: source_customer_id\n      customer_email: {column: cust}\n",
     ["unknown orders field 'customer_email'", "customers: inline"]),
    ("    format: csv\n", "    format: csv\n    customers: inline\n    customer_source: us_web_customers\n",
     ["customers: inline and customer_source both given"]),
    ("    format: csv\n", "    format: csv\n    negative_quantity: refund\n", ["negative_quantity 'refund'", "`return`"]),
    ("    format: csv\n", "    format: fixed_width\n", ["widths is None", "one positive character count per column (4"]),
    ("    format: csv\n", "    format: csv\n    widths: [1, 2, 3, 4]\n", ["widths is only for format: fixed_width"]),
    ("    format: csv\n", "    format: csv\n    mode: snapshot\n", ["mode is not for orders sources"]),
    ("    format: csv\n", "    format: csv\n    currency: pounds\n", ["currency 'pounds' is not an ISO 4217 code"]),
    ("    format: csv\n", "    format: csv\n    max_quarantined_share: 2\n", ["max_quarantined_share' is 2"]),
    ("      day: ordered_at\n", "      day: ordered_at\n      ordered_at: {column: day}\n", ["ordered_at is mapped twice"]),
])
def test_new_source_keys_are_checked_with_file_key_and_fix(conf, old, new, expected):
    assert old in LOG_SOURCE
    with_source(conf, LOG_SOURCE.replace(old, new, 1))
    assert "sources/zz.yaml" in refused(conf, expected)


SNAPSHOT_SOURCE = """
region: eu
sources:
  - name: eu_crm_contacts
    channel: call_center
    entity: customers
    mode: snapshot
    sequence: {from: file_name, pattern: 'contacts_(\\d{8})', format: yyyyMMdd}
    format: csv
    path: eu/crm
    columns: [id, name, churn]
    mapping: {id: source_customer_id, name: full_name}
    attributes:
      churned: {column: churn, type: boolean}
    shares_ids_with: [eu_web_customers]
"""


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("mode: snapshot", "mode: nightly", ["unknown mode 'nightly' for a customers source", "cdc, snapshot, incremental"]),
    ("    mode: snapshot\n", "    mode: snapshot\n    cdc: {operation_column: id, sequence_column: id, operations: {}}\n",
     ["mode snapshot with a cdc: section"]),
    ("'contacts_(\\d{8})'", "'contacts_\\d{8}'", ["sequence pattern has 0 capture groups"]),
    ("'contacts_(\\d{8})'", "'contacts_(\\d{8'", ["sequence pattern is not a regular expression"]),
    ("from: file_name", "from: mtime", ["sequence from 'mtime'"]),
    ("type: boolean", "type: bool", ["attribute type 'bool'", "did you mean 'boolean'"]),
    ("      churned:", "      Churned:", ["attribute name 'Churned'"]),
    ("[eu_web_customers]", "[eu_web_cusotmers]", ["shares_ids_with names 'eu_web_cusotmers'", "did you mean 'eu_web_customers'"]),
    ("    mode: snapshot\n", "    mode: snapshot\n    max_shrink: 0\n", ["max_shrink' is 0", "at most 1"]),
])
def test_snapshot_source_keys_are_checked_with_file_key_and_fix(conf, old, new, expected):
    assert old in SNAPSHOT_SOURCE
    with_source(conf, SNAPSHOT_SOURCE.replace(old, new, 1))
    refused(conf, expected)


def test_a_snapshot_source_loads_with_its_sequence_attributes_and_shared_ids(conf):
    with_source(conf, SNAPSHOT_SOURCE)
    source = load_settings(conf, lakehouse="/tmp/unused").source("eu_crm_contacts")
    assert (source.mode, source.sequence.source, source.sequence.format) == ("snapshot", "file_name", "yyyyMMdd")
    assert source.attributes["churned"].kind == "boolean" and source.shares_ids_with == ("eu_web_customers",)
    assert source.max_shrink == 0.5


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("  rule_actions: {}", "  rule_actions: {positive_quantity: warn}",
     ["rule 'positive_quantity' cannot be warn", "CHECK constraint positive_quantity", "negative_quantity: return"]),
    ("  rule_actions: {}", "  rule_actions: {has_order_id: warn}", ["rule 'has_order_id' cannot be warn", "NOT NULL order_id"]),
    ("  rule_actions: {}", "  rule_actions: {positve_quantity: quarantine}",
     ["unknown quality rule 'positve_quantity'", "did you mean 'positive_quantity'"]),
    ("reporting_currency: USD", "reporting_currency: dollars", ["reporting_currency 'dollars' is not an ISO 4217 code"]),
    ("  max_quarantined_share: 0.5", "  max_quarantined_share: -1", ["silver.max_quarantined_share' is -1"]),
    ("      review_from: 4.0", "      review_from: 12", ["review_from 12.0 is above link_at 10.0",
                                                         "silver.identity.probabilistic.review_from"]),
    ("      link_at: 10.0", "      link_at: high", ["'silver.identity.probabilistic.link_at' is 'high'", "give a number"]),
    ("      min_training_records: 200", "      min_training_record: 200",
     ["unknown key 'silver.identity.probabilistic.min_training_record'", "did you mean 'min_training_records'"]),
    ("      scoring_memory: 512MB", "      scoring_memory: lots",
     ["scoring_memory is 'lots'", "silver.identity.probabilistic.scoring_memory", "512MB or 2GB"]),
])
def test_quality_and_money_settings_are_checked(conf, old, new, expected):
    edit(conf / "base.yaml", old, new)
    refused(conf, expected)


def test_scoring_memory_takes_any_size_duckdb_reads(conf):
    edit(conf / "base.yaml", "      scoring_memory: 512MB", "      scoring_memory: 1.5 GiB")
    assert load_settings(conf, lakehouse="/tmp/unused").silver.identity.probabilistic.scoring_memory == "1.5GiB"
    import duckdb  # the value goes to DuckDB as it is: it must read it

    assert duckdb.connect(config={"memory_limit": "1.5GiB"}).execute(
        "SELECT current_setting('memory_limit')").fetchone()[0] == "1.5 GiB"


def test_a_guarded_rule_may_still_fail_and_a_warn_rule_may_quarantine(conf):
    edit(conf / "base.yaml", "  rule_actions: {}", "  rule_actions: {positive_quantity: fail, fx_rate_found: quarantine}")
    assert load_settings(conf, lakehouse="/tmp/unused").silver.rule_actions == {
        "positive_quantity": "fail", "fx_rate_found": "quarantine"}


def test_the_jar_cache_belongs_to_the_installation_not_to_the_config_folder(conf):
    assert load_settings(conf, lakehouse="/tmp/unused").spark.ivy_cache == str(REPO_CONF.parent / ".cache" / "ivy")


def test_config_sits_below_the_layers_and_imports_none_of_them():
    import subprocess
    import sys

    probe = ("import sys, crm_lakehouse.config, crm_lakehouse.config.sections; "
             "print(' '.join(sorted(m for m in sys.modules if m.startswith('crm_lakehouse'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.split()
    below = {"crm_lakehouse", "crm_lakehouse.entities", "crm_lakehouse.errors"}
    assert [m for m in loaded if m not in below and not m.startswith("crm_lakehouse.config")] == []
    assert "pyspark" not in subprocess.run([sys.executable, "-c", probe.replace("crm_lakehouse')", "pyspark')")],
                                           check=True, capture_output=True, text=True).stdout
