"""Bronze ingestion: every landed record exactly once, malformed ones kept, lineage on every row."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from crm_lakehouse.bronze.ingest import CORRUPT_RECORD, FILE_MODIFIED_AT, LINEAGE_COLUMNS, bronze_summary, ingest_all, ingest_source
from crm_lakehouse.catalog import register_all
from crm_lakehouse.config import load_settings
from crm_lakehouse.errors import SourceError
from crm_lakehouse.generator import read_manifest
from tests.bronze.small_source import partner_products
from tests.conftest import REPO, copy_landing, settings_for


def bronze(spark, settings, name):
    return spark.read.format("delta").load(settings.table_path("bronze", name))


# The landing-wide tests read the shared day_by_day lakehouse: bronze ingested day 0, again with
# nothing new, then day 1 (silver and gold read bronze, they never write it).
def test_bronze_holds_every_landed_line_including_malformed_ones(spark, generated, day_by_day):
    settings = day_by_day.settings
    manifests = [read_manifest(spark, str(generated), day)["sources"] for day in (0, 1)]
    summary = {row["source"]: row for row in bronze_summary(spark, settings)}
    for source in settings.sources:
        expected_lines = sum(m[source.name]["data_lines"] for m in manifests)
        expected_malformed = sum(m[source.name]["defects"]["malformed_line"] for m in manifests)
        assert summary[source.name]["bronze_rows"] == expected_lines, source.name
        assert summary[source.name]["unparseable_rows"] == expected_malformed, source.name


def test_rerun_with_no_new_files_adds_nothing(day_by_day):
    settings, runs = day_by_day.settings, day_by_day.bronze
    assert all(r.ok for r in runs.day0.values())
    assert sum(r.rows_added for r in runs.day0.values()) > 0
    assert {name: r.rows_added for name, r in runs.rerun.items()} == {s.name: 0 for s in settings.sources}
    assert runs.versions_after_rerun == runs.versions_before_rerun


def test_day_one_adds_exactly_day_ones_lines(spark, generated, day_by_day):
    runs = day_by_day.bronze
    day0 = read_manifest(spark, str(generated), 0)["sources"]
    day1 = read_manifest(spark, str(generated), 1)["sources"]
    assert {n: r.rows_added for n, r in runs.day0.items()} == {n: day0[n]["data_lines"] for n in runs.day0}
    assert {n: r.rows_added for n, r in runs.day1.items()} == {n: day1[n]["data_lines"] for n in runs.day1}


def test_every_row_carries_its_lineage(spark, day_by_day):
    settings = day_by_day.settings
    source = settings.source("eu_store_orders")
    table = bronze(spark, settings, source.name)
    assert set(LINEAGE_COLUMNS) <= set(table.columns)
    assert table.where(F.col("_source") != source.name).count() == 0
    assert table.where((F.col("_region") != "eu") | (F.col("_channel") != "store")).count() == 0
    files = {row["_source_file"].rsplit("/", 1)[-1] for row in table.select("_source_file").distinct().collect()}
    landed = {p.name for p in (Path(settings.landing) / source.path).iterdir()}
    assert files == landed
    assert table.where(F.col("_ingested_at").isNull() | F.col("_batch_id").isNull()).count() == 0
    # day 0 and day 1 arrived in different runs, so in different micro-batches
    assert table.select("_batch_id").distinct().count() == 2
    assert "_ingest_date" in DeltaTable.forPath(spark, settings.table_path("bronze", source.name)).detail() \
        .first()["partitionColumns"]


def test_gb18030_export_is_decoded_into_readable_chinese(spark, day_by_day):
    settings = day_by_day.settings
    table = bronze(spark, settings, "cn_store_customers").where(F.col("姓名").isNotNull())
    assert table.count() > 0
    assert table.where(~F.col("姓名").rlike(r"^\s*\p{IsHan}")).count() == 0
    assert table.where(F.col("操作类型").isin("新增", "修改", "删除")).count() == table.count()


def test_tables_are_registered_in_the_catalog(spark, day_by_day):
    settings = day_by_day.settings
    names = {row.tableName for row in spark.sql("SHOW TABLES IN bronze").collect()}
    assert {s.name for s in settings.sources} <= names
    # A new process (notebook, SQL endpoint) finds the same tables from the folders alone.
    found = register_all(spark, settings)  # silver's and gold's too: the lakehouse went through every layer
    assert [name for name in found if name.startswith("bronze.")] == sorted(f"bronze.{s.name}" for s in settings.sources)
    assert {"silver.customers", "gold.customer_360"} <= set(found)


def test_exact_rows_and_corrupt_record_of_a_small_source(spark, base_settings, tmp_path):
    """A source added by YAML alone: its CSV lands as strings, a broken line kept whole."""
    settings, landing = partner_products(tmp_path)
    (landing / "produtos_1.csv").write_text("codigo|nome|categoria\nP1|Café|Grocery\nP2|Chá\nP3||Home\n", encoding="utf-8")
    result = ingest_source(spark, settings, settings.source("br_partner_products"))
    assert result.rows_added == 3

    actual = bronze(spark, settings, "br_partner_products").select("codigo", "nome", "categoria", CORRUPT_RECORD, "_source")
    expected = spark.createDataFrame(
        [("P1", "Café", "Grocery", None, "br_partner_products"),
         ("P2", "Chá", None, "P2|Chá", "br_partner_products"),
         ("P3", None, "Home", None, "br_partner_products")],
        f"codigo string, nome string, categoria string, {CORRUPT_RECORD} string, _source string")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_missing_landing_folder_fails_that_source_only(spark, base_settings, generated, tmp_path):
    settings = settings_for(base_settings, tmp_path)
    copy_landing(generated, Path(settings.landing), days=[0])
    shutil.rmtree(Path(settings.landing) / "eu" / "web" / "orders")
    results = {r.source: r for r in ingest_all(spark, settings, only=["eu_web_orders", "eu_store_orders"])}
    assert not results["eu_web_orders"].ok
    assert "landing folder for source 'eu_web_orders' does not exist" in results["eu_web_orders"].error
    assert "eu/web/orders" in results["eu_web_orders"].error and "fix:" in results["eu_web_orders"].error
    assert results["eu_store_orders"].ok and results["eu_store_orders"].rows_added > 0


def test_lost_checkpoint_is_refused_instead_of_ingesting_twice(spark, base_settings, generated, tmp_path):
    settings = settings_for(base_settings, tmp_path)
    copy_landing(generated, Path(settings.landing), days=[0])
    source = settings.source("global_erp_products")
    ingest_source(spark, settings, source)
    shutil.rmtree(Path(settings.checkpoints) / "bronze" / source.name)
    with pytest.raises(SourceError, match="checkpoint is gone"):
        ingest_source(spark, settings, source)


def test_no_landing_folder_at_all_is_one_clear_error(spark, base_settings, tmp_path):
    settings = settings_for(base_settings, tmp_path)
    with pytest.raises(SourceError, match="landing folder does not exist.*fix: run `crm-lakehouse generate"):
        ingest_all(spark, settings)


def test_sources_side_by_side_land_what_one_by_one_lands_and_report_in_the_configured_order(
        spark, base_settings, generated, tmp_path):
    # Three formats (CSV in GB18030, JSON lines, Parquet) and a source that fails, not in name order.
    names = ["us_partner_orders", "cn_store_customers", "us_store_orders", "eu_web_orders"]
    landing = [name for name in names if name != "us_store_orders"]
    tables = {}
    for at_once in (1, 3):
        settings = settings_for(base_settings, tmp_path / f"at_once_{at_once}")
        settings = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, sources_at_once=at_once))
        copy_landing(generated, Path(settings.landing), days=[0, 1])
        shutil.rmtree(Path(settings.landing) / "us" / "store" / "orders")
        results = ingest_all(spark, settings, only=names)
        assert [r.source for r in results] == names
        assert [r.ok for r in results] == [True, True, False, True]
        assert "landing folder for source 'us_store_orders' does not exist" in results[2].error
        tables[at_once] = {name: bronze(spark, settings, name) for name in landing}
    # Where and when the rows landed differ; what landed, and each source's batches, do not.
    when = ["_source_file", FILE_MODIFIED_AT, "_ingested_at", "_ingest_date"]
    for name in landing:
        one_by_one, side_by_side = (tables[n][name].drop(*when) for n in (1, 3))
        assert one_by_one.count() > 0
        assert_df_equality(side_by_side, one_by_one, ignore_row_order=True, ignore_column_order=True)


def test_unreadable_file_fails_its_source_and_the_others_still_land(spark, base_settings, generated, tmp_path):
    settings = settings_for(base_settings, tmp_path)
    copy_landing(generated, Path(settings.landing), days=[0])
    broken = Path(settings.landing) / "us" / "store" / "orders" / "orders_20260101_late.csv.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00" + b"not really gzip" * 10)  # a gzip header, then garbage
    results = {r.source: r for r in ingest_all(spark, settings, only=["us_store_orders", "us_web_orders"])}
    assert not results["us_store_orders"].ok
    assert "ingest of source 'us_store_orders' failed" in results["us_store_orders"].error
    assert "\n" not in results["us_store_orders"].error
    assert results["us_web_orders"].ok and results["us_web_orders"].rows_added > 0


FIXED_WIDTH = """
region: eu
sources:
  - name: eu_partner_bank_customers
    channel: partner
    entity: customers
    mode: snapshot
    format: fixed_width
    widths: [8, 24, 8, 3, 12]
    options: {encoding: ISO-8859-1}
    path: eu/partner/bank
    date_format: yyyyMMdd
    columns: [CUSTNO, NAME, BIRTHDT, CTRY, BALANCE]
    mapping: {CUSTNO: source_customer_id, NAME: full_name, BIRTHDT: birth_date, CTRY: country}
"""


def test_fixed_width_text_is_split_by_position_in_its_encoding_and_a_longer_line_is_kept_unparsed(spark, tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "sources" / "zz.yaml").write_text(FIXED_WIDTH, encoding="utf-8")
    settings = load_settings(conf, lakehouse=str(tmp_path / "lakehouse"))
    source = settings.source("eu_partner_bank_customers")
    folder = Path(settings.landing) / source.path
    folder.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "fixtures" / "exports" / "bank_customers_fixed_width.dat", folder)
    assert ingest_source(spark, settings, source).rows_added == 4        # the blank line is no record
    rows = {r["CUSTNO"] or r[CORRUPT_RECORD][:8]: r for r in bronze(spark, settings, source.name).collect()}
    assert (rows["10000017"]["NAME"], rows["10000017"]["CTRY"], rows["10000017"]["BALANCE"]) == \
        ("MÜLLER, JÜRGEN", "DEU", "12045.50")
    assert rows["10000033"]["BALANCE"] == "-42.17" and rows["10000025"]["NAME"] == "GARCÍA LÓPEZ, ANA"
    assert rows["10000041"]["CUSTNO"] is None and rows["10000041"][CORRUPT_RECORD].endswith("EXTRA")


def test_an_empty_full_snapshot_is_refused_before_it_can_delete_anyone(spark, base_settings):
    import dataclasses

    from crm_lakehouse.bronze.snapshot_files import refused_snapshot

    source = dataclasses.replace(base_settings.source("eu_web_customers"), mode="snapshot")
    batch = spark.createDataFrame([("file:/landing/a.json",)], "_source_file string")
    files = {"file:///landing/a.json": 1, "file:///landing/empty.json": 2}
    assert refused_snapshot(spark, source, batch, files, "/nowhere", 0) == (
        "file:///landing/empty.json", "a full snapshot with no records")
    assert refused_snapshot(spark, source, batch, {"file:///landing/a.json": 1}, "/nowhere", 0) is None
