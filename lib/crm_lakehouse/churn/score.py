"""The ``score_churn`` job: the champion model scores every current customer as of gold's date.

Writes ``gold.churn_scores`` (one row per active customer in ``gold.customer_360``; customers
gone from customer_360 or no longer active are removed) and the churn columns of ``gold.customer_360``. Both MERGEs change a
row only when its probability, band, model version or feature date changes, so a rerun — after
a crash between the two writes, or on unchanged data — leaves the tables as a clean run would.
Features change daily for everyone (recency moves with the date), so everyone is scored.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.catalog import register_table
from crm_lakehouse.config import Settings
from crm_lakehouse.churn import tracking
from crm_lakehouse.churn.features import NEVER_DAYS, NUMERIC_FEATURES, churn_features, snapshot_frame
from crm_lakehouse.churn.model import PROBABILITY, churn_probability
from crm_lakehouse.delta_writes import WriteResult, is_delta_table, update_columns, upsert
from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.gold import contracts as gold
from crm_lakehouse.gold.customer_360 import CHURN_COLUMNS
from crm_lakehouse.silver import contracts as silver
from crm_lakehouse.tables import conform


class GoldNotBuiltError(LakehouseError):
    """Scoring needs gold.customer_360 and its as-of date."""


@dataclass
class ScoringResult:
    model_version: str
    as_of_date: str
    customers: int
    bands: dict[str, int] = field(default_factory=dict)
    writes: dict[str, WriteResult] = field(default_factory=dict)
    seconds: float = 0.0


def risk_band(probability: Column, bands: dict[str, float]) -> Column:
    """'high' from ``bands['high']``, 'medium' from ``bands['medium']``, else 'low'."""
    return F.when(probability >= bands["high"], "high").when(probability >= bands["medium"], "medium").otherwise("low")


def score_churn(spark: SparkSession, settings: Settings) -> ScoringResult:
    """Score every customer of gold.customer_360 with ``models:/<name>@champion``."""
    import mlflow

    started = time.monotonic()
    cfg = settings.churn
    tracking.use_tracking(settings)
    if tracking.champion_version(cfg.registered_model) is None and cfg.train_if_no_champion:
        from crm_lakehouse.churn.train import train_churn

        train_churn(spark, settings)
    champion = tracking.require_champion(settings)
    as_of = _gold_as_of(spark, settings)
    model = mlflow.spark.load_model(f"models:/{cfg.registered_model}/{champion.version}", dfs_tmpdir=cfg.dfs_tmpdir)

    def silver_table(contract):
        return spark.read.format("delta").load(silver.table_path(settings, contract))

    c360_path = gold.table_path(settings, gold.CUSTOMER_360)
    # Active customers only: a customer deleted in every source, or the unknown member of guest
    # sales, has nobody to keep; their scores go.
    current = spark.read.format("delta").load(c360_path).where(F.col("customer_status") == "active") \
        .select("customer_id", F.col("region").alias("c360_region"))
    features = churn_features(silver_table(silver.CUSTOMERS_HISTORY), silver_table(silver.ORDER_LINES),
                              silver_table(silver.INTERACTIONS), snapshot_frame(spark, [as_of]))
    # customer_360 holds the customers with a live record today; every one of them is scored.
    # One whose first record is dated after the data's as-of date has no history yet: they are
    # scored as a customer without orders or contacts, which is what they are.
    features = with_empty_history(current.join(features, "customer_id", "left"))
    scored = churn_probability(model.transform(features)).select(
        "customer_id", F.round(PROBABILITY, 6).alias("churn_probability"))
    scores = scored.select(
        "customer_id", "churn_probability", risk_band(F.col("churn_probability"), cfg.risk_bands).alias("churn_risk_band"),
        F.lit(cfg.registered_model).alias("model_name"), F.lit(str(champion.version)).alias("model_version"),
        F.lit(as_of).alias("features_as_of_date"), F.current_timestamp().alias("scored_at")).localCheckpoint()

    scores_path = gold.table_path(settings, gold.CHURN_SCORES)
    gold.ensure_gold_table(spark, settings, gold.CHURN_SCORES)
    gone = spark.read.format("delta").load(scores_path).select("customer_id").join(current, "customer_id", "left_anti")
    rows = conform(scores, gold.CHURN_SCORES).withColumn("_delete", F.lit(False)).unionByName(
        gone.withColumn("_delete", F.lit(True)), allowMissingColumns=True)
    compared = [c for c in gold.CHURN_SCORES.columns if c not in ("customer_id", "scored_at")]
    result = ScoringResult(model_version=str(champion.version), as_of_date=str(as_of), customers=scores.count())
    result.writes[gold.CHURN_SCORES.name] = upsert(
        spark, rows, scores_path, ["customer_id"], delete_when="s._delete", insert_when="NOT s._delete",
        update_when="NOT (" + " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in compared) + ")")
    profile_columns = scores.select("customer_id", F.col("churn_probability"), F.col("churn_risk_band"),
                                    F.col("model_version").alias("churn_model_version"))
    result.writes[gold.CUSTOMER_360.name] = update_columns(
        spark, profile_columns, c360_path, ["customer_id"], list(CHURN_COLUMNS),
        update_when="NOT (" + " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in CHURN_COLUMNS) + ")")
    register_table(spark, gold.LAYER, gold.CHURN_SCORES.name, scores_path)
    result.bands = {r["churn_risk_band"]: r["count"] for r in scores.groupBy("churn_risk_band").count().collect()}
    scores.unpersist()
    result.seconds = round(time.monotonic() - started, 2)
    return result


def with_empty_history(features: DataFrame) -> DataFrame:
    """Fill the features of customers without any history at the as-of date."""
    far = [c for c in NUMERIC_FEATURES if c in ("recency_days", "days_since_last_interaction")]
    return features.fillna(float(NEVER_DAYS), subset=far) \
        .fillna(0.0, subset=[c for c in NUMERIC_FEATURES if c not in far]) \
        .withColumn("region", F.coalesce("region", "c360_region")).drop("c360_region")


def _gold_as_of(spark: SparkSession, settings: Settings) -> dt.date:
    path = gold.table_path(settings, gold.RUN_LOG)
    latest = None
    if is_delta_table(spark, path):
        latest = spark.read.format("delta").load(path).agg(F.max("as_of_date")).first()[0]
    if latest is None:
        raise GoldNotBuiltError("gold has not been built: there is nothing to score", where=path,
                                fix="run the daily jobs first: crm-lakehouse job build_gold")
    return latest
