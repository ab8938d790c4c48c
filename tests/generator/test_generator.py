"""The generator: deterministic, region conventions as configured, and the defects it reports are in the files."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.bronze.ingest import CORRUPT_RECORD, read_source_files
from crm_lakehouse import generator
from crm_lakehouse.generator import GROUND_TRUTH_DIR, generate, make_plan, read_manifest
from crm_lakehouse.generator.names import PLACEHOLDER_EMAILS, PLACEHOLDER_PHONE, STORE_PHONES
from crm_lakehouse.generator.population import PEOPLE_AT_SCALE_1
from tests.conftest import TEST_SCALE

VALID_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
KNOWN_CURRENCIES = ["CNY", "EUR", "GBP", "USD"]


def files_of(generated: Path, source, day: int) -> list[str]:
    return sorted(str(p) for p in (generated / source.path).glob(f"*_d{day:03d}_*"))


def parsed(spark, generated: Path, source, day: int) -> DataFrame:
    """The source's records of one day, as the source's own reader parses them."""
    return read_source_files(spark, source, files_of(generated, source, day))


def content_sha256(path: Path) -> str:
    """A text export's bytes' hash; a Parquet file's schema, metadata, row groups and rows' in order.

    parquet-mr lists each column chunk's encodings in the JVM's hash order, which differs from one
    process to the next (``generated`` may come from the other test process): the same rows,
    written twice, then differ in those bytes only.
    """
    if path.suffix != ".parquet":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    parquet = pq.ParquetFile(path)
    layout = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    content = (str(parquet.schema_arrow), sorted(parquet.metadata.metadata.items()), layout, parquet.read().to_pylist())
    return hashlib.sha256(repr(content).encode()).hexdigest()


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): content_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(".crc")
            and GROUND_TRUTH_DIR not in p.parts}


def test_same_seed_gives_byte_identical_files(spark, base_settings, generated, tmp_path):
    """Byte for byte for the text exports, row for row for the Parquet ones (``content_sha256``)."""
    again = tmp_path / "landing"
    generate(spark, make_plan(base_settings, scale=TEST_SCALE), str(again), [1])
    first = {k: v for k, v in digest(generated).items() if "_d001_" in k or "day=1" in k}
    assert first and digest(again) == first


def test_a_different_seed_gives_different_people(spark, base_settings):
    from crm_lakehouse.generator.population import people

    one = people(spark, make_plan(base_settings, scale=TEST_SCALE)).select("full_name", "email")
    other = people(spark, make_plan(base_settings, seed=7, scale=TEST_SCALE)).select("full_name", "email")
    assert one.count() == other.count() == int(PEOPLE_AT_SCALE_1 * TEST_SCALE)
    assert one.exceptAll(other).count() > 0.9 * one.count()


def test_every_source_gets_files_for_day_zero_and_the_increment(base_settings, generated, spark):
    for day in (0, 1):
        manifest = read_manifest(spark, str(generated), day)
        assert set(manifest["sources"]) == {s.name for s in base_settings.sources}
        for source in base_settings.sources:
            stats = manifest["sources"][source.name]
            assert stats["files"] == [Path(f).name for f in files_of(generated, source, day)]
            if day == 0:
                assert stats["records"] > 0, source.name
    day1 = read_manifest(spark, str(generated), 1)["sources"]
    customer_feeds = [s.name for s in base_settings.sources if s.entity == "customers"]
    for kind in ("inserts", "updates", "deletes"):
        assert sum(day1[name][kind] for name in customer_feeds) > 0, kind
    assert sum(day1[name]["defects"]["replayed_event"] for name in customer_feeds) > 0
    assert sum(day1[name]["defects"]["out_of_order_event"] for name in customer_feeds) > 0
    assert sum(day1[s.name]["records"] for s in base_settings.sources if s.entity == "orders") > 0


def test_data_lines_in_files_match_the_manifest(base_settings, generated, spark):
    for day in (0, 1):
        manifest = read_manifest(spark, str(generated), day)["sources"]
        for source in base_settings.sources:
            expected = manifest[source.name]
            if source.format == "parquet":
                rows = parsed(spark, generated, source, day).count() if expected["files"] else 0
                assert rows == expected["data_lines"], source.name
                continue
            encoding = source.options.get("encoding", "UTF-8")
            lines = [line for f in files_of(generated, source, day)
                     for line in Path(f).read_bytes().decode(encoding).splitlines()[1 if source.format == "csv" else 0:]]
            assert len(lines) == expected["data_lines"], source.name
            assert len(lines) - len(set(lines)) >= expected["defects"]["exact_duplicate"], source.name


def test_chinese_store_export_is_gb18030_with_chinese_headers(base_settings, generated):
    source = base_settings.source("cn_store_customers")
    raw = Path(files_of(generated, source, 0)[0]).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    header, first = raw.decode("gb18030").splitlines()[:2]
    assert header.split(",") == list(source.columns)
    assert "新增" in first or "修改" in first or "删除" in first


def test_regional_date_conventions(base_settings, generated, spark):
    eu = parsed(spark, generated, base_settings.source("eu_store_customers"), 0).where(F.col("Geburtsdatum").isNotNull())
    us = parsed(spark, generated, base_settings.source("us_store_customers"), 0).where(F.col("birthDate").isNotNull())
    # Day-first in Europe, month-first in the US: the first field exceeds 12 somewhere in one, never in the other.
    assert eu.where(F.split("Geburtsdatum", "/")[0].cast("int") > 12).count() > 0
    assert eu.where(F.split("Geburtsdatum", "/")[1].cast("int") > 12).count() == 0
    assert us.where(F.split("birthDate", "/")[1].cast("int") > 12).count() > 0
    assert us.where(F.split("birthDate", "/")[0].cast("int") > 12).count() == 0
    assert parsed(spark, generated, base_settings.source("eu_store_orders"), 0).where(F.col("Preis").contains(",")).count() > 0


@pytest.mark.parametrize("day", [0, 1])
def test_reported_defect_counts_are_really_in_the_files(base_settings, generated, spark, day):
    manifest = read_manifest(spark, str(generated), day)["sources"]
    for source in base_settings.sources:
        expected = manifest[source.name]["defects"]
        if not manifest[source.name]["files"]:
            assert manifest[source.name]["data_lines"] == 0
            continue
        df = parsed(spark, generated, source, day)
        if CORRUPT_RECORD in df.columns:
            df = df.cache()
            assert df.where(F.col(CORRUPT_RECORD).isNotNull()).count() == expected["malformed_line"], source.name
            df = df.where(F.col(CORRUPT_RECORD).isNull())
        # A replayed event is a copy of a line delivered on an earlier day; the manifest counts
        # its value defects once, with the original.
        earlier = [parsed(spark, generated, source, d) for d in range(day) if manifest_files(spark, generated, source, d)]
        found = _defects_found(df, source, base_settings, earlier)
        for name, count in found.items():
            assert count == expected[name], f"{source.name}: {name} found {count}, manifest says {expected[name]}"


def manifest_files(spark, generated, source, day: int) -> list[str]:
    return read_manifest(spark, str(generated), day)["sources"][source.name]["files"]


def _defects_found(df: DataFrame, source, settings, earlier: list[DataFrame] = ()) -> dict[str, int]:
    col = lambda field: F.col(f"`{source.column_for(field)}`")  # noqa: E731
    is_live = col("operation") != source.cdc.operations["delete"] if source.cdc else F.lit(True)
    date_field = {"customers": "signup_at", "orders": "ordered_at", "interactions": "occurred_at"}.get(source.entity)
    key_field = {"customers": "source_customer_id", "orders": "order_id", "interactions": "interaction_id"}.get(source.entity)
    checks = {}
    if key_field:
        checks["missing_key"] = col(key_field).isNull()
    if date_field:
        checks["unparseable_date"] = col(date_field).isNotNull() & F.try_to_timestamp(
            col(date_field), F.lit(source.timestamp_format)).isNull()
    if source.entity == "customers":
        placeholder_phones = [PLACEHOLDER_PHONE, *STORE_PHONES.values()]
        checks["placeholder_email"] = col("email").isin(*PLACEHOLDER_EMAILS)
        checks["invalid_email"] = is_live & col("email").isNotNull() & ~col("email").rlike(VALID_EMAIL)
        checks["placeholder_phone"] = is_live & col("phone").isin(*placeholder_phones)
        checks["mixed_phone_format"] = col("phone").isNotNull() & ~col("phone").startswith("+") & \
            ~col("phone").isin(*placeholder_phones)
    if source.entity == "orders":
        checks["negative_amount"] = col("unit_price").startswith("-")
        checks["unknown_currency"] = ~col("currency").isin(*KNOWN_CURRENCIES)
    # Duplicated rows carry the same defects as their original: count each distinct row once.
    distinct = df.distinct()
    first_deliveries = distinct
    for previous in earlier:
        first_deliveries = first_deliveries.subtract(previous.select(*df.columns))
    found = {}
    if checks:
        row = first_deliveries.agg(*[F.sum(F.coalesce(check, F.lit(False)).cast("int")).alias(name)
                             for name, check in checks.items()]).first()
        found = {name: int(row[name] or 0) for name in checks}
    found["exact_duplicate"] = df.count() - distinct.count()
    return found


def test_ground_truth_knows_every_source_record_and_a_propensity(base_settings, generated, spark):
    truth = spark.read.parquet(str(generated / GROUND_TRUTH_DIR / "customer_records"))
    people = spark.read.parquet(str(generated / GROUND_TRUTH_DIR / "people"))
    assert people.count() == int(PEOPLE_AT_SCALE_1 * TEST_SCALE)
    assert people.where((F.col("churn_propensity") < 0) | (F.col("churn_propensity") > 1)).count() == 0
    for source in [s for s in base_settings.sources if s.entity == "customers"]:
        ids = parsed(spark, generated, source, 0).where(F.col(CORRUPT_RECORD).isNull() if source.format != "parquet"
                                                         else F.lit(True))
        ids = ids.select(F.col(f"`{source.column_for('source_customer_id')}`").alias("source_customer_id")).dropna()
        known = truth.where(F.col("source") == source.name).select("source_customer_id")
        assert ids.subtract(known).count() == 0, source.name
    # The same person sits in several systems under different ids: identity resolution has work to do.
    per_person = truth.groupBy("person_id").count()
    assert per_person.where("count > 1").count() > 0.2 * people.count()


def test_names_differ_from_the_truth_exactly_where_variants_were_injected(base_settings, generated, spark):
    truth = spark.read.parquet(str(generated / GROUND_TRUTH_DIR / "customer_records")) \
        .join(spark.read.parquet(str(generated / GROUND_TRUTH_DIR / "people")).select("person_id", "full_name"), "person_id")
    manifest = read_manifest(spark, str(generated), 0)["sources"]
    for source in [s for s in base_settings.sources if s.entity == "customers"]:
        df = parsed(spark, generated, source, 0)
        if CORRUPT_RECORD in df.columns:
            df = df.where(F.col(CORRUPT_RECORD).isNull())
        records = df.distinct().select(F.col(f"`{source.column_for('source_customer_id')}`").alias("source_customer_id"),
                                       F.col(f"`{source.column_for('full_name')}`").alias("written_name")).dropna()
        joined = records.join(truth.where(F.col("source") == source.name), "source_customer_id")
        assert joined.where(F.col("written_name") != F.col("full_name")).count() == manifest[source.name]["defects"]["name_variant"]


def test_small_exports_written_from_the_driver_are_the_bytes_sparks_writer_gives(spark, base_settings, generated,
                                                                                 tmp_path, monkeypatch):
    """An entity's text exports of a day, up to ``DRIVER_WRITE_MAX_LINES`` lines in all, are
    collected and written from the driver; the same day through Spark's writer (the path of
    large exports) gives the same files, duplicated and malformed lines included, and neither
    leaves a ``.crc`` beside them."""
    manifest = read_manifest(spark, str(generated), 0)["sources"]
    text_sources = [s for s in base_settings.sources if s.format != "parquet"]
    for entity in {s.entity for s in text_sources}:
        lines = [manifest[s.name]["data_lines"] for s in text_sources if s.entity == entity]
        assert min(lines) > 0 and sum(lines) <= generator.DRIVER_WRITE_MAX_LINES
    assert sum(manifest[s.name]["defects"]["exact_duplicate"] for s in text_sources) > 0
    assert sum(manifest[s.name]["defects"]["malformed_line"] for s in text_sources) > 0
    monkeypatch.setattr(generator, "DRIVER_WRITE_MAX_LINES", 0)
    through_spark = tmp_path / "landing"
    generate(spark, make_plan(base_settings, scale=TEST_SCALE), str(through_spark), [0])
    from_driver = {k: v for k, v in digest(generated).items() if "_d000_" in k or "day=0" in k}
    assert from_driver and digest(through_spark) == from_driver
    assert [p for folder in (generated, through_spark) for p in folder.rglob("*.crc")
            if GROUND_TRUTH_DIR not in p.parts] == []


def test_the_exports_collected_together_are_text_in_a_known_charset_and_stay_within_the_cap(base_settings):
    text = [s for s in base_settings.sources if s.entity == "orders" and s.format != "parquet"][:3]
    parquet = dataclasses.replace(text[0], name="orders_parquet", format="parquet")
    utf16 = dataclasses.replace(text[1], name="orders_utf16", options={**text[1].options, "encoding": "UTF-16"})
    sources = [text[0], parquet, utf16, text[1], text[2]]
    cap = generator.DRIVER_WRITE_MAX_LINES
    lines = {text[0].name: cap // 2, parquet.name: 10, utf16.name: 10, text[1].name: cap // 2 + 1, text[2].name: cap // 2}
    assert generator._collected_together(sources, lines) == [text[0], text[2]]
    assert generator._collected_together(sources, {**lines, text[0].name: 0}) == [text[1]]
