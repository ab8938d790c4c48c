"""``silver.interactions``: one row per ticket, call, e-mail or campaign response."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.silver.contracts import INTERACTIONS, conform
from crm_lakehouse.silver.quality import Expectation

INTERACTION_RULES = [
    Expectation("parseable_record", "NOT is_unparseable", "quarantine"),
    Expectation("has_interaction_id", "interaction_id IS NOT NULL", "quarantine",
                guards="silver.interactions' NOT NULL interaction_id"),
    Expectation("has_customer_reference", "customer_system IS NOT NULL AND source_customer_id IS NOT NULL", "quarantine",
                guards="silver.interactions' NOT NULL customer_source, source_customer_id"),
    Expectation("has_interaction_type", "interaction_type IS NOT NULL", "quarantine",
                guards="silver.interactions' NOT NULL interaction_type"),
    Expectation("parseable_occurred_at", "occurred_at IS NOT NULL AND occurred_local_date IS NOT NULL", "quarantine",
                guards="silver.interactions' NOT NULL occurred_at"),
    Expectation("satisfaction_range", "satisfaction_score IS NULL OR satisfaction_score BETWEEN 1 AND 5", "quarantine",
                guards="silver.interactions' CHECK constraint satisfaction_range"),
    Expectation("known_customer", "customer_id IS NOT NULL", "warn"),
]


def interactions(accepted: DataFrame, batch_id: int) -> DataFrame:
    """Accepted staged interactions (with customer id) -> ``silver.interactions`` rows."""
    return conform(accepted.select(
        "*", F.col("_source").alias("source"), F.col("_region").alias("region"), F.lit(batch_id).alias("_batch_id"),
    ).withColumn("interaction_type", F.lower(F.col("interaction_type")))
     .withColumn("interaction_channel", F.lower(F.col("interaction_channel"))), INTERACTIONS)
