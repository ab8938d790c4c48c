"""GDPR / PIPL erasure: after `erase`, no data file, change file, log entry or checkpoint of any
table holds the person's e-mail, phone or name; gold stays consistent; the audit has no PII."""

from __future__ import annotations

import json
import shutil
from functools import reduce
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from crm_lakehouse.delta_writes import commit_info
from crm_lakehouse.erase import delete_rows, erase, read_ids_file, subject_hash
from crm_lakehouse.errors import ConfigError
from crm_lakehouse.gold.build import build_gold
from crm_lakehouse.silver.build import build_silver
from tests.conftest import settings_for


def load(spark, settings, layer, table):
    return spark.read.format("delta").load(settings.table_path(layer, table))


def pick_subjects(spark, settings, how_many: int) -> list[str]:
    """People worth erasing: records in two systems, orders, a churn score, and values no one
    else's contain (a shared name legitimately stays in the lakehouse, under the other person)."""
    history = load(spark, settings, "silver", "customers_history")
    unique_names = history.groupBy("full_name").agg(F.countDistinct("customer_id").alias("people")) \
        .where("people = 1").select("full_name")
    rich = (load(spark, settings, "silver", "customer_identity_map").groupBy("customer_id").count().where("count >= 2")
            .join(load(spark, settings, "gold", "fact_sales").select("customer_id").distinct(), "customer_id")
            .join(load(spark, settings, "gold", "churn_scores").select("customer_id"), "customer_id")
            .join(history.join(unique_names, "full_name").select("customer_id").distinct(), "customer_id"))
    picked = []
    for candidate in [r["customer_id"] for r in rich.orderBy("customer_id").limit(20 * how_many).collect()]:
        others = history.where(F.col("customer_id") != candidate).select(
            F.concat_ws("|", "email", "phone", "full_name").alias("text"))
        values = identifying_values(spark, settings, candidate)
        if others.where(reduce(lambda a, b: a | b, [F.col("text").contains(v) for v in values])).isEmpty():
            picked.append(candidate)
        if len(picked) == how_many:
            return picked
    raise AssertionError(f"the test data has fewer than {how_many} people to erase: {picked}")


def identifying_values(spark, settings, customer_id: str) -> set[str]:
    """Every e-mail, phone and name the person had, standardized and as each source sent it."""
    values = set()
    for row in load(spark, settings, "silver", "customers_history").where(F.col("customer_id") == customer_id).collect():
        values |= {v for v in (row["email"], row["phone"], row["full_name"]) if v}
    records = load(spark, settings, "silver", "customer_identity_map").where(F.col("customer_id") == customer_id).collect()
    for record in records:
        source = settings.source(record["source"])
        columns = [source.column_for(c) for c in ("email", "phone", "full_name") if source.column_for(c)]
        raw = load(spark, settings, "bronze", source.name).where(
            F.trim(F.col(f"`{source.column_for('source_customer_id')}`")) == record["source_customer_id"])
        for row in raw.select(*[F.col(f"`{c}`") for c in columns]).collect():
            values |= {str(v).strip() for v in row if v and str(v).strip()}
    return {v for v in values if len(v) >= 5 or not v.isascii()}


def files_holding(root: Path, values: set[str]) -> list[str]:
    """Files under the lakehouse (landing excluded) whose decoded content contains a value:
    Parquet cell by cell (data, change-data and checkpoint files), everything else as text."""
    hits = []
    for file in root.rglob("*"):
        if not file.is_file() or "landing" in file.relative_to(root).parts:
            continue
        if file.suffix == ".parquet":
            text = str(pq.ParquetFile(file).read().to_pylist())
        else:
            text = file.read_bytes().decode("utf-8", errors="replace")
        found = [v for v in values if v in text]
        if found:
            hits.append(f"{file.relative_to(root)}: {found[:3]}")
    return hits


def completed_sales(facts) -> Decimal:
    return facts.where("status = 'completed'").agg(F.sum("net_amount_reporting")).first()[0] or Decimal(0)


def test_delete_rows_deletes_exactly_the_rows_counts_them_and_keeps_their_values_out_of_the_log(spark, tmp_path):
    path = str(tmp_path / "t")
    rows = [(1, "ann@example.cn"), (2, "bob@example.de"), (3, "ann@example.cn"), (4, None)]
    spark.createDataFrame(rows, "id long, email string").write.format("delta").save(path)
    table = lambda: spark.read.format("delta").load(path)  # noqa: E731
    assert delete_rows(spark, path, table().where("email = 'ann@example.cn' OR email IS NULL")) == 3
    assert sorted(tuple(r) for r in table().collect()) == [(2, "bob@example.de")]
    # The commit's recorded operation names the join on fingerprints, not the values (file
    # statistics in the log still hold them until the purge drops old log entries).
    merge = commit_info(spark, path, 1)
    assert merge["operation"] == "MERGE" and "ann@example.cn" not in json.dumps(merge)
    assert delete_rows(spark, path, table().where("email = 'nobody@example.com'")) == 0


@pytest.fixture(scope="module")
def erased(spark, churn_runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("erase") / "lakehouse"
    shutil.copytree(churn_runs.settings.root, root)
    settings = settings_for(churn_runs.settings, root)
    subjects = pick_subjects(spark, settings, 2)
    values = {s: identifying_values(spark, settings, s) for s in subjects}
    facts = load(spark, settings, "gold", "fact_sales")
    theirs = facts.where(F.col("customer_id").isin(subjects))
    before = {"customers": load(spark, settings, "gold", "customer_360").count(), "lines": facts.count(),
              "their_lines": theirs.count(), "their_completed_sales": completed_sales(theirs),
              "daily_net_sales_reporting": load(spark, settings, "gold", "sales_daily").agg(F.sum("net_sales_reporting")).first()[0]}
    ids_file = root.parent / "erase.txt"
    ids_file.write_text(f"# ticket 4711\n{subjects[0]}\n\n{subjects[1]}  # second request\n")
    result = erase(spark, settings, read_ids_file(str(ids_file)))
    return settings, subjects, values, before, result


def test_nothing_of_the_erased_people_is_left_in_any_file_or_log(spark, erased):
    settings, subjects, values, _, result = erased
    assert len(subjects) == 2 and all(len(v) >= 3 for v in values.values()), values
    assert [s.requested_id for s in result.subjects] == subjects
    assert result.rows_deleted["silver.customers_history"] > 0 and result.rows_deleted["gold.churn_scores"] == 2
    assert any(n > 0 for t, n in result.rows_deleted.items() if t.startswith("bronze."))
    everything = set().union(*values.values())
    assert files_holding(Path(settings.root), everything) == []
    # The scan can find them where they still are: the landing files, the source systems' exports.
    landing_hits = [f for f in Path(settings.landing).rglob("*.*") if any(
        v in f.read_bytes().decode("utf-8", errors="ignore") or v.encode("gb18030", errors="ignore") in f.read_bytes()
        for v in everything)]
    assert landing_hits


def test_no_layer_resolves_them_and_gold_stays_consistent(spark, erased):
    settings, subjects, _, before, _ = erased
    for layer, table in (("silver", "customers"), ("silver", "customer_identity_map"), ("silver", "order_lines"),
                         ("gold", "customer_360"), ("gold", "fact_sales"), ("gold", "churn_scores")):
        assert load(spark, settings, layer, table).where(F.col("customer_id").isin(subjects)).count() == 0, table
    assert load(spark, settings, "gold", "customer_360").count() == before["customers"] - 2
    facts = load(spark, settings, "gold", "fact_sales")
    assert before["their_lines"] > 0 and facts.count() == before["lines"] - before["their_lines"]
    # The sales mart was recomputed for the groups they bought in: it still sums the facts.
    daily = load(spark, settings, "gold", "sales_daily").agg(F.sum("net_sales_reporting")).first()[0]
    assert daily == completed_sales(facts) == before["daily_net_sales_reporting"] - before["their_completed_sales"]


def test_the_audit_records_the_request_without_personal_data(spark, erased):
    settings, subjects, values, _, result = erased
    audit = load(spark, settings, "audit", "erasures").collect()
    assert sorted(r["subject_sha256"] for r in audit) == sorted(subject_hash(s) for s in subjects)
    assert {r["request_id"] for r in audit} == {result.request_id}
    assert all(r["rows_deleted"]["gold.churn_scores"] == 2 and r["source_records"] >= 2 for r in audit)
    text = str([r.asDict() for r in audit])
    assert not any(v in text for v in set().union(*values.values()) | set(subjects))


def test_the_pipeline_runs_on_after_the_purge_and_a_repeat_is_recorded_not_redone(spark, erased):
    settings, subjects, _, _, _ = erased
    assert build_silver(spark, settings) == [] and build_gold(spark, settings) == []
    again = erase(spark, settings, [subjects[0]])
    assert again.subjects == [] and again.already_erased == [subjects[0]]
    assert load(spark, settings, "audit", "erasures").count() == 2
    with pytest.raises(ConfigError, match="unknown customer id"):
        erase(spark, settings, ["C-does-not-exist"])
    # Time travel to before the erasure is gone with the files.
    with pytest.raises(Exception):
        spark.read.format("delta").option("versionAsOf", 0).load(settings.table_path("gold", "customer_360")).count()
