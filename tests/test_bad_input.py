"""Bad input: each broken delivery has a defined fate — landed and quarantined with a reason,
deduplicated, or refused with one clear line — other sources are unaffected, and every silver
batch still reconciles with bronze.

One lakehouse with six customer sources gets day 0 plus a bad file per case; a second run
brings a re-delivered file, a late CDC event and the fix for the refused file.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import random
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.bronze.ingest import FILE_PROBLEM, ingest_all
from crm_lakehouse.silver.build import build_silver
from tests.conftest import comparable, copy_landing, settings_for

SOURCES = ("cn_store_customers", "cn_web_customers", "eu_web_customers", "eu_store_customers",
           "eu_call_center_customers", "us_store_customers")
STRICT = "us_store_customers"        # declared schema_evolution: fail
UNTOUCHED = "cn_web_customers"        # gets no bad file until the re-delivery of run 2


@dataclasses.dataclass
class Matrix:
    settings: object
    first: dict                       # source -> IngestResult of run 1
    second: dict                      # ... of run 2
    history_after_first: list
    folders: dict


def folder(settings, name: str) -> Path:
    return Path(settings.landing) / settings.source(name).path


def day0_file(settings, name: str) -> Path:
    [file] = sorted(folder(settings, name).glob("*_d000_*"))
    return file


def json_lines(file: Path) -> list[dict]:
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.startswith("{")]


def csv_rows(file: Path, sep: str, encoding: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(file.read_bytes().decode(encoding)), delimiter=sep))


def csv_bytes(rows: list[list[str]], sep: str, encoding: str) -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=sep, lineterminator="\n").writerows(rows)
    return out.getvalue().encode(encoding)


def cdc_event(template: dict, source, record_id: str, op: str, sequence: int, modified: str, name: str) -> dict:
    column = source.column_for
    return {**template, column("source_customer_id"): record_id, column("full_name"): name,
            source.cdc.operation_column: source.cdc.operations[op], source.cdc.sequence_column: str(sequence),
            column("updated_at"): modified, column("email"): f"{record_id.lower()}@example.org"}


@pytest.fixture(scope="module")
def matrix(spark, base_settings, generated, tmp_path_factory) -> Matrix:
    root = tmp_path_factory.mktemp("bad_input")
    settings = settings_for(base_settings, root)
    sources = tuple(dataclasses.replace(s, schema_evolution="fail") if s.name == STRICT else s
                    for s in settings.sources if s.name in SOURCES)
    settings = dataclasses.replace(settings, sources=sources)
    copy_landing(generated, Path(settings.landing), days=[0])
    source = settings.source

    # cn store CRM (GB18030): a header-only file, and an export written in UTF-8 by mistake.
    cn = source("cn_store_customers")
    (folder(settings, cn.name) / "header_only.csv").write_bytes((",".join(cn.columns) + "\n").encode("gb18030"))
    cn_rows = csv_rows(day0_file(settings, cn.name), ",", "gb18030")
    (folder(settings, cn.name) / "utf8_export.csv").write_bytes(csv_bytes(cn_rows[:6], ",", "utf-8"))

    # eu web (JSON lines): an empty file, a 10 MB field, a CDC record with a gap in its sequence.
    web = source("eu_web_customers")
    (folder(settings, web.name) / "empty.jsonl").write_bytes(b"")
    template = json_lines(day0_file(settings, web.name))[0]
    huge = {**cdc_event(template, web, "BIG0001", "insert", 1, "2025-12-01T10:00:00", "Big Field"),
            web.column_for("address"): "x" * 10_000_000}
    fine = cdc_event(template, web, "BIG0002", "insert", 1, "2025-12-01T10:00:00", "Small Field")
    (folder(settings, web.name) / "big_field.jsonl").write_text(
        "\n".join(json.dumps(r) for r in (huge, fine)) + "\n", encoding="utf-8")
    gap = [cdc_event(template, web, "GAP0001", op, seq, f"2025-12-0{day}T10:00:00", f"Gap Version {seq}")
           for op, seq, day in (("insert", 100, 1), ("update", 200, 2), ("update", 400, 4))]
    (folder(settings, web.name) / "gap.jsonl").write_text("\n".join(json.dumps(r) for r in gap) + "\n", encoding="utf-8")

    # eu store (CSV ;): binary garbage, an extra column, and Latin-1 bytes in a UTF-8 source.
    store = source("eu_store_customers")
    (folder(settings, store.name) / "garbage.csv").write_bytes(random.Random(7).randbytes(20_000))
    store_rows = csv_rows(day0_file(settings, store.name), ";", "utf-8")
    (folder(settings, store.name) / "extra_column.csv").write_bytes(
        csv_bytes([store_rows[0] + ["Segment"]] + [r + ["gold"] for r in store_rows[1:4]], ";", "utf-8"))
    id_at, name_at = store.columns.index(store.column_for("source_customer_id")), store.columns.index(store.column_for("full_name"))
    latin = [list(store_rows[1]), list(store_rows[2])]
    latin[0][id_at], latin[0][name_at] = "LAT0001", "Jürgen Müller"
    latin[1][id_at], latin[1][name_at] = "LAT0002", "Jurgen Muller"
    (folder(settings, store.name) / "latin1_export.csv").write_bytes(csv_bytes([store_rows[0]] + latin, ";", "latin-1"))

    # eu call center: a gzip export cut off half-way.
    call = source("eu_call_center_customers")
    whole = gzip.compress(day0_file(settings, call.name).read_bytes())
    (folder(settings, call.name) / "late_export.csv.gz").write_bytes(whole[: len(whole) // 2])

    # us store (schema_evolution: fail): the e-mail column renamed.
    us = source(STRICT)
    us_rows = csv_rows(day0_file(settings, us.name), ",", "utf-8")
    header = [("e_mail" if c == us.column_for("email") else c) for c in us_rows[0]]
    (folder(settings, us.name) / "renamed_column.csv").write_bytes(csv_bytes([header] + us_rows[1:4], ",", "utf-8"))

    # A JSON export whose records all lack the required sequence field.
    no_seq = [{k: v for k, v in cdc_event(template, web, f"NOSEQ{i}", "insert", 1, "2025-12-01T10:00:00", "No Seq").items()
               if k != web.cdc.sequence_column} for i in range(3)]
    (folder(settings, web.name) / "missing_sequence.jsonl").write_text(
        "\n".join(json.dumps(r) for r in no_seq) + "\n", encoding="utf-8")

    first = {r.source: r for r in ingest_all(spark, settings)}
    build_silver(spark, settings)
    history_after_first = spark.read.format("delta").load(settings.table_path("silver", "customers_history")) \
        .where(F.col("source") == UNTOUCHED).collect()

    # Run 2: the source system re-sends a file under a new name, the missing CDC event arrives
    # late, and the refused file is overwritten by a correct export (same name: the refused
    # batch is retried with exactly its files).
    untouched = day0_file(settings, UNTOUCHED)
    (untouched.parent / "resent_customers.jsonl").write_bytes(untouched.read_bytes())
    late = cdc_event(template, web, "GAP0001", "update", 300, "2025-12-03T10:00:00", "Gap Version 300")
    (folder(settings, web.name) / "late_event.jsonl").write_text(json.dumps(late) + "\n", encoding="utf-8")
    (folder(settings, us.name) / "renamed_column.csv").write_bytes(csv_bytes(us_rows[:4], ",", "utf-8"))
    second = {r.source: r for r in ingest_all(spark, settings)}
    build_silver(spark, settings)
    return Matrix(settings, first, second, history_after_first, {s: folder(settings, s) for s in SOURCES})


def table(spark, settings, layer, name):
    return spark.read.format("delta").load(settings.table_path(layer, name))


def bronze_of(spark, matrix, source, file_name):
    return table(spark, matrix.settings, "bronze", source).where(F.col("_source_file").endswith(f"/{file_name}"))


def quarantined(spark, matrix, file_name):
    return table(spark, matrix.settings, "silver", "quarantine").where(F.col("source_file").endswith(f"/{file_name}"))


def test_empty_and_header_only_files_land_nothing_and_break_nothing(spark, matrix):
    assert matrix.first["eu_web_customers"].ok and matrix.first["cn_store_customers"].ok
    assert bronze_of(spark, matrix, "eu_web_customers", "empty.jsonl").count() == 0
    assert bronze_of(spark, matrix, "cn_store_customers", "header_only.csv").count() == 0


def test_a_truncated_gzip_fails_its_source_in_one_line_and_the_others_land(spark, matrix):
    failed = matrix.first["eu_call_center_customers"]
    assert not failed.ok and "\n" not in failed.error
    assert "ingest of source 'eu_call_center_customers' failed" in failed.error and "fix:" in failed.error
    assert [s for s, r in matrix.first.items() if not r.ok] == ["eu_call_center_customers", STRICT]
    assert table(spark, matrix.settings, "bronze", UNTOUCHED).count() > 0


def test_a_file_in_the_wrong_encoding_is_landed_and_quarantined(spark, matrix):
    utf8 = bronze_of(spark, matrix, "cn_store_customers", "utf8_export.csv")
    assert utf8.count() == 5 and utf8.where(F.col(FILE_PROBLEM).isNull()).count() == 0
    rules = quarantined(spark, matrix, "utf8_export.csv").select(F.explode("broken_rules")).distinct().collect()
    assert "file_matches_declared_columns" in {r[0] for r in rules}
    assert quarantined(spark, matrix, "utf8_export.csv").count() == 5
    # Latin-1 bytes in a UTF-8 source: only the record with the undecodable name is held back.
    latin = quarantined(spark, matrix, "latin1_export.csv").collect()
    assert [r["record_key"].split("|")[0] for r in latin] == ["LAT0001"] and "decodable_text" in latin[0]["broken_rules"]
    history = table(spark, matrix.settings, "silver", "customers_history")
    assert history.where("source_customer_id = 'LAT0002'").count() == 1


def test_binary_garbage_and_an_extra_column_are_quarantined_with_the_reason(spark, matrix):
    for file_name in ("garbage.csv", "extra_column.csv"):
        landed = bronze_of(spark, matrix, "eu_store_customers", file_name)
        assert landed.count() > 0 and landed.where(F.col(FILE_PROBLEM).isNull()).count() == 0, file_name
        assert quarantined(spark, matrix, file_name).count() == landed.count(), file_name
    [problem] = bronze_of(spark, matrix, "eu_store_customers", "extra_column.csv").select(FILE_PROBLEM).distinct().collect()
    assert problem[0] == "columns differ from the declared ones: unexpected Segment"


def test_a_missing_required_field_quarantines_the_file_and_names_the_field(spark, matrix):
    landed = bronze_of(spark, matrix, "eu_web_customers", "missing_sequence.jsonl")
    assert [r[0] for r in landed.select(FILE_PROBLEM).distinct().collect()] == \
        ["columns differ from the declared ones: missing lsn"]
    assert quarantined(spark, matrix, "missing_sequence.jsonl").count() == 3


def test_a_ten_megabyte_field_is_quarantined_and_its_neighbour_accepted(spark, matrix):
    [big] = quarantined(spark, matrix, "big_field.jsonl").collect()
    assert big["record_key"].split("|")[0] == "BIG0001" and "record_size_limit" in big["broken_rules"]
    history = table(spark, matrix.settings, "silver", "customers_history")
    assert history.where("source_customer_id = 'BIG0002'").count() == 1


def test_a_renamed_column_is_refused_under_the_fail_policy_until_the_file_is_replaced(spark, matrix):
    refused = matrix.first[STRICT]
    assert not refused.ok and "\n" not in refused.error
    email = matrix.settings.source(STRICT).column_for("email")
    assert f"refuses renamed_column.csv: columns differ from the declared ones: unexpected e_mail; missing {email}" \
        in refused.error
    assert matrix.second[STRICT].ok and matrix.second[STRICT].rows_added > 3
    corrected = bronze_of(spark, matrix, STRICT, "renamed_column.csv")
    assert corrected.count() == 3 and corrected.where(F.col(FILE_PROBLEM).isNotNull()).count() == 0


def test_a_redelivered_file_is_deduplicated_and_changes_no_silver_row(spark, matrix):
    resent = bronze_of(spark, matrix, UNTOUCHED, "resent_customers.jsonl").count()
    assert resent > 0
    log = table(spark, matrix.settings, "silver", "run_log").where(f"source = '{UNTOUCHED}' AND batch_id = 1").first()
    assert log["rows_in"] == resent and log["accepted"] == 0
    after = table(spark, matrix.settings, "silver", "customers_history").where(F.col("source") == UNTOUCHED)
    assert_df_equality(comparable(after), comparable(spark.createDataFrame(matrix.history_after_first, after.schema)),
                       ignore_row_order=True, ignore_nullable=True)


def test_a_gap_in_cdc_sequence_is_applied_in_order_and_filled_when_the_event_arrives(spark, matrix):
    versions = table(spark, matrix.settings, "silver", "customers_history") \
        .where("source_customer_id = 'GAP0001'").orderBy("sequence_number").collect()
    assert [v["sequence_number"] for v in versions] == [100, 200, 300, 400]
    for earlier, later in zip(versions, versions[1:]):
        assert earlier["valid_to"] == later["valid_from"] and not earlier["is_current"]
    assert versions[-1]["is_current"] and versions[-1]["valid_to"] is None
    [customer] = table(spark, matrix.settings, "silver", "customers").join(
        table(spark, matrix.settings, "silver", "customer_identity_map").where("source_customer_id = 'GAP0001'"),
        "customer_id").select("full_name").collect()
    assert customer["full_name"] == "Gap Version 400"


def test_every_batch_still_reconciles_with_bronze(spark, matrix):
    log = table(spark, matrix.settings, "silver", "run_log")
    assert log.where("rows_in <> accepted + quarantined + duplicates_removed").count() == 0
    rows_in = {r["source"]: r["n"] for r in log.groupBy("source").agg(F.sum("rows_in").alias("n")).collect()}
    bronze = {s: table(spark, matrix.settings, "bronze", s).count() for s in SOURCES if s != "eu_call_center_customers"}
    assert rows_in == bronze
    assert log.agg(F.sum("quarantined")).first()[0] == table(spark, matrix.settings, "silver", "quarantine").count()
