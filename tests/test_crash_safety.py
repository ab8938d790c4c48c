"""Two writers on one table: Delta's conflict is retried and both writes land. (The workflow
SIGKILLed in bronze, silver and gold and rerun is tests/deploy/test_standalone_cluster.py; a
crash between two table commits of a batch, in process, is the ``day_by_day`` fixture.)"""

from __future__ import annotations

import threading
import time

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from crm_lakehouse.delta_writes import ensure_table, upsert

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
