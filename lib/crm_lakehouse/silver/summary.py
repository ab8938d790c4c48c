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


def identity_quality(spark: SparkSession, settings: Settings) -> dict:
    """Pairwise precision and recall of the identity map against the generator's ground truth.

    A pair is two source records; precision = pairs given one golden id that are one person,
    recall = pairs of one person given one golden id. Only synthetic landing data has the truth.
    """
    from pathlib import PurePosixPath

    truth = spark.read.parquet(str(PurePosixPath(settings.landing) / "_ground_truth" / "customer_records"))
    identity = spark.read.format("delta").load(table_path(settings, CONTRACTS["customer_identity_map"]))
    resolved = identity.join(truth, ["source", "source_customer_id"])

    def pairs(*keys: str) -> int:
        return resolved.groupBy(*keys).count().select(F.sum(F.col("count") * (F.col("count") - 1) / 2)).first()[0] or 0

    same_both, same_golden, same_person = pairs("customer_id", "person_id"), pairs("customer_id"), pairs("person_id")
    return {"records": identity.count(), "records_with_truth": resolved.count(),
            "precision": same_both / same_golden if same_golden else 1.0,
            "recall": same_both / same_person if same_person else 1.0}
