"""Crash safety: the pipeline killed with SIGKILL while writing bronze, then inside the silver
MERGEs, then inside the gold MERGEs, and rerun each time, ends with every table equal to an
uninterrupted run — no row lost, none duplicated. Two writers on one table: Delta's conflict
is retried and both writes land."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from crm_lakehouse.delta_writes import ensure_table, upsert
from crm_lakehouse.gold import contracts as gold
from crm_lakehouse.silver import contracts as silver
from tests.conftest import comparable, copy_landing
from tests.deploy.cluster import kill_when

CLI = str(Path(sys.executable).parent / "crm-lakehouse")
# Where and when, not what: batch ids, landing paths (and the quarantine's hash over its path), times.
RUN_COLUMNS = {"_batch_id", "_source_file", "source_file", "record_hash", "quarantined_at", "_ingested_at",
               "_ingest_date"}


def versions(root: Path, layer: str) -> dict[str, int]:
    """Each table's newest committed version in a layer."""
    return {log.parent.name: max(int(f.stem) for f in log.glob("*.json"))
            for log in (root / layer).glob("*/_delta_log") if any(log.glob("*.json"))}


def partly(layer: str, root: Path, tables: int, *, merged_from: int) -> bool:
    """Some of the layer's tables have a write at or past ``merged_from``, not all of them."""
    written = [v >= merged_from for v in versions(root, layer).values()]
    return sum(written) >= 1 and (len(written) < tables or not all(written))


@pytest.mark.e2e  # SIGKILLs CLI runs of the whole workflow
def test_killed_in_bronze_silver_and_gold_then_rerun_equals_an_uninterrupted_run(
        spark, one_shot, generated, tmp_path):
    root = tmp_path / "lakehouse"
    copy_landing(generated, root / "landing")
    command = [CLI, "run", "--workflow", "continuous", "--cycles", "1", "--lakehouse", str(root)]
    sources = len(one_shot.sources)
    moments = [
        ("bronze", lambda: partly("bronze", root, sources, merged_from=0)),
        # Silver and gold create their tables (version 0) first, then MERGE batch after batch.
        ("silver", lambda: partly("silver", root, len(silver.CONTRACTS), merged_from=1)),
        ("gold", lambda: partly("gold", root, 3, merged_from=1) and (root / "gold" / "run_log").exists()),
    ]
    for layer, moment in moments:
        with open(tmp_path / f"killed_in_{layer}.log", "wb") as log:
            run = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            kill_when(run, moment, timeout=900, poll=0.05)
    state = {layer: versions(root, layer) for layer in ("bronze", "silver", "gold")}
    assert 0 < len(state["bronze"]) and len(state["gold"]) >= 3, state
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]

    def same(layer: str, name: str, columns: list[str] | None = None) -> None:
        actual = spark.read.format("delta").load(str(root / layer / name))
        expected = spark.read.format("delta").load(one_shot.table_path(layer, name))
        keep = [c for c in (columns or expected.columns) if c not in RUN_COLUMNS]
        assert actual.count() == expected.count(), f"{layer}.{name}"
        assert_df_equality(comparable(actual.select(*keep)), comparable(expected.select(*keep)), ignore_row_order=True,
                           ignore_nullable=True, ignore_column_order=True)

    for source in one_shot.sources:
        same("bronze", source.name)
    for name in silver.CONTRACTS:
        if name != "run_log":
            same("silver", name)
    for contract in (gold.CONTRACTS["customer_360"], gold.CONTRACTS["fact_sales"], gold.CONTRACTS["sales_daily"]):
        same("gold", contract.name)
    # Every silver batch reconciles, and over all batches each source's rows came in once.
    log = spark.read.format("delta").load(str(root / "silver" / "run_log"))
    assert log.where("rows_in <> accepted + quarantined + duplicates_removed").count() == 0
    totals = lambda df: sorted(df.groupBy("source").agg(F.sum("rows_in"), F.sum("accepted"), F.sum("quarantined"))  # noqa: E731
                               .collect())
    assert totals(log) == totals(spark.read.format("delta").load(one_shot.table_path("silver", "run_log")))


SCHEMA = StructType([StructField("id", LongType(), False), StructField("writer", StringType(), True)])


@pytest.mark.e2e  # two racing MERGEs, each source 3 s to compute, one retried
def test_two_writers_merging_into_one_table_at_once_both_land(spark, tmp_path):
    path = str(tmp_path / "shared")
    ensure_table(spark, path, SCHEMA)
    # One row of each source takes 3 s to compute: both MERGEs read the same (empty) snapshot.
    # Spark evaluates a Python UDF on every row even inside CASE WHEN, so the UDF itself decides
    # which row waits (a sleep in every row made this test take minutes).
    slow = F.udf(lambda writer, waits: (time.sleep(3) if waits else None, writer)[1], StringType())
    results, errors = {}, []

    def write(writer: str, ids: range) -> None:
        try:
            rows = spark.createDataFrame([(i, writer) for i in ids], SCHEMA) \
                .withColumn("writer", slow("writer", F.col("id") == ids.start))
            results[writer] = upsert(spark, rows, path, ["id"])
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w, ids)) for w, ids in (("a", range(0, 50)), ("b", range(50, 100)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(r.attempts for r in results.values()) == [1, 2]  # one of them met the conflict and retried
    final = spark.read.format("delta").load(path)
    expected = spark.createDataFrame([(i, "a" if i < 50 else "b") for i in range(100)], SCHEMA)
    assert_df_equality(final, expected, ignore_row_order=True, ignore_nullable=True)
