"""What silver holds: row counts per table, quarantine by rule, and the reconciliation totals."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.config import Settings
from crm_lakehouse.silver.contracts import CONTRACTS, QUARANTINE, RUN_LOG, table_path


def table_counts(spark: SparkSession, settings: Settings) -> list[dict]:
    return [{"table": f"silver.{name}", "rows": spark.read.format("delta").load(table_path(settings, contract)).count()}
            for name, contract in CONTRACTS.items()]


def quarantine_by_rule(spark: SparkSession, settings: Settings) -> list[dict]:
    """Quarantined rows per (target table, rule); a row breaking two rules counts under both."""
    rows = (spark.read.format("delta").load(table_path(settings, QUARANTINE))
            .select("target_table", F.explode("broken_rules").alias("rule"))
            .groupBy("target_table", "rule").count().orderBy("target_table", F.desc("count"), "rule").collect())
    return [{"table": r["target_table"], "rule": r["rule"], "rows": r["count"]} for r in rows]


def reconciliation_totals(spark: SparkSession, settings: Settings) -> list[dict]:
    """Per target table over all batches: rows in, accepted, quarantined, duplicates removed."""
    rows = (spark.read.format("delta").load(table_path(settings, RUN_LOG)).groupBy("target_table")
            .agg(*[F.sum(c).alias(c) for c in ("rows_in", "accepted", "quarantined", "duplicates_removed")])
            .orderBy("target_table").collect())
    return [r.asDict() for r in rows]
