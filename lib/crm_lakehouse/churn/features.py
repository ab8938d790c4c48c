"""Churn features and labels as of snapshot dates: one row per (customer_id, snapshot_date).

A feature at snapshot date T sees only events dated on or before T (an order's local date, an
interaction's local date, a customer record's valid_from); the label looks at (T, T + horizon]
only. Both are computed for several snapshot dates in one pass: the events are joined to the
dates with ``event_date <= T`` in the join condition, so nothing later can reach a feature.

Customer ids are today's golden ids (identity resolution links records it learnt about later);
every other input is time-bounded.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

NUMERIC_FEATURES = (
    "tenure_days", "recency_days", "orders_30d", "orders_90d", "orders_prior_90d", "orders_365d",
    "lifetime_orders", "orders_per_30_days", "spend_90d", "spend_prior_90d", "spend_365d",
    "spend_trend", "avg_order_value_365d", "channels_used_365d", "returns_365d",
    "interactions_30d", "interactions_90d", "tickets_30d", "tickets_90d", "scored_interactions_90d",
    "avg_satisfaction_90d", "days_since_last_interaction",
)
CATEGORICAL_FEATURES = ("region",)
FEATURES = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
KEY = ("customer_id", "snapshot_date")

# Recency-like features of someone without any such event get this many days: far beyond every
# window, so trees and linear models alike read it as "long ago".
NEVER_DAYS = 730
# Complaints reach the service desk as tickets and calls.
SERVICE_CONTACTS = ("ticket", "call")
_COUNTS = ["orders_30d", "orders_90d", "orders_prior_90d", "orders_365d", "lifetime_orders", "channels_used_365d",
           "returns_365d", "interactions_30d", "interactions_90d", "tickets_30d", "tickets_90d",
           "scored_interactions_90d"]


def snapshot_frame(spark: SparkSession, dates: list[dt.date]) -> DataFrame:
    """The snapshot dates as a one-column DataFrame (``snapshot_date``)."""
    return spark.createDataFrame([(d,) for d in sorted(set(dates))], "snapshot_date date")


def live_customers(history: DataFrame, snapshots: DataFrame, *, at: Column | None = None) -> DataFrame:
    """Customers with at least one live source record at each snapshot (or at ``at``, a date
    expression over ``snapshot_date``): (customer_id, snapshot_date, region, first_seen_date).

    A record is live from its version's ``valid_from`` until its ``valid_to``; a delete is a
    zero-length tombstone, so a deleted record is live nowhere after it."""
    moment = (at if at is not None else F.col("snapshot_date")).cast("timestamp") + F.expr("INTERVAL 1 DAY")
    joined = history.join(snapshots, history["valid_from"] < moment)
    is_live = (F.col("operation") != "delete") & (F.col("valid_to").isNull() | (F.col("valid_to") >= moment))
    return joined.groupBy("customer_id", "snapshot_date").agg(
        F.max(is_live).alias("is_live"),
        F.min_by("region", "valid_from").alias("region"),
        F.to_date(F.min("valid_from")).alias("first_seen_date"),
    ).where("is_live").drop("is_live")


def churn_features(history: DataFrame, order_lines: DataFrame, interactions: DataFrame,
                   snapshots: DataFrame) -> DataFrame:
    """Features of every customer live at each snapshot date, from events up to that date only.

    Args:
        history: silver.customers_history (customer_id, operation, region, valid_from, valid_to).
        order_lines: silver.order_lines (customer_id, order_id, order_local_date, status,
            channel, quantity, net_amount_reporting).
        interactions: silver.interactions (customer_id, interaction_type, occurred_local_date,
            satisfaction_score).
        snapshots: one ``snapshot_date`` per row (:func:`snapshot_frame`).

    Returns:
        One row per (customer_id, snapshot_date) with :data:`FEATURES`, no nulls.
    """
    customers = live_customers(history, snapshots)
    days_before = F.datediff(F.col("snapshot_date"), F.col("event_date"))

    lines = order_lines.where(F.col("customer_id").isNotNull()).select(
        "customer_id", "order_id", "channel", F.col("order_local_date").alias("event_date"),
        ((F.col("status") == "completed") & (F.col("quantity") > 0)).alias("is_completed"),
        F.coalesce(F.col("net_amount_reporting").cast("double"), F.lit(0.0)).alias("amount"))
    lines = lines.join(snapshots, F.col("event_date") <= F.col("snapshot_date"))
    completed = F.col("is_completed")

    def orders_within(low: int, high: int) -> Column:
        """Distinct completed orders dated ``low`` to ``high - 1`` days before the snapshot."""
        return F.count_distinct(F.when(completed & (days_before >= low) & (days_before < high), F.col("order_id")))

    def spend_within(low: int, high: int) -> Column:
        return F.sum(F.when(completed & (days_before >= low) & (days_before < high), F.col("amount")).otherwise(0.0))

    purchases = lines.groupBy("customer_id", "snapshot_date").agg(
        F.max(F.when(completed, F.col("event_date"))).alias("last_order_date"),
        F.min(F.when(completed, F.col("event_date"))).alias("first_order_date"),
        orders_within(0, 30).alias("orders_30d"),
        orders_within(0, 90).alias("orders_90d"),
        orders_within(90, 180).alias("orders_prior_90d"),
        orders_within(0, 365).alias("orders_365d"),
        F.count_distinct(F.when(completed, F.col("order_id"))).alias("lifetime_orders"),
        spend_within(0, 90).alias("spend_90d"),
        spend_within(90, 180).alias("spend_prior_90d"),
        spend_within(0, 365).alias("spend_365d"),
        F.count_distinct(F.when(completed & (days_before < 365), F.col("channel"))).alias("channels_used_365d"),
        F.count_distinct(F.when(~completed & (days_before < 365), F.col("order_id"))).alias("returns_365d"),
    )

    contacts = interactions.where(F.col("customer_id").isNotNull()).select(
        "customer_id", "interaction_type", "satisfaction_score",
        F.col("occurred_local_date").alias("event_date"))
    contacts = contacts.join(snapshots, F.col("event_date") <= F.col("snapshot_date"))
    service = F.col("interaction_type").isin(*SERVICE_CONTACTS)
    service_desk = contacts.groupBy("customer_id", "snapshot_date").agg(
        F.max("event_date").alias("last_interaction_date"),
        F.count(F.when(days_before < 30, 1)).alias("interactions_30d"),
        F.count(F.when(days_before < 90, 1)).alias("interactions_90d"),
        F.count(F.when(service & (days_before < 30), 1)).alias("tickets_30d"),
        F.count(F.when(service & (days_before < 90), 1)).alias("tickets_90d"),
        F.count(F.when(days_before < 90, F.col("satisfaction_score"))).alias("scored_interactions_90d"),
        F.avg(F.when(days_before < 90, F.col("satisfaction_score"))).alias("avg_satisfaction_90d"),
    )

    df = customers.join(purchases, list(KEY), "left").join(service_desk, list(KEY), "left")
    tenure = F.greatest(F.datediff("snapshot_date", "first_seen_date"), F.lit(0))
    since = lambda column: F.coalesce(F.datediff("snapshot_date", column), F.lit(NEVER_DAYS))  # noqa: E731
    # No order or contact yet means zero of them, not unknown.
    df = df.fillna(0, subset=_COUNTS).fillna(0.0, subset=["spend_90d", "spend_prior_90d", "spend_365d"])
    df = df.withColumn("tenure_days", tenure) \
        .withColumn("recency_days", F.least(since("last_order_date"), F.lit(NEVER_DAYS))) \
        .withColumn("orders_per_30_days", F.col("lifetime_orders") * 30.0 / F.greatest(tenure, F.lit(30))) \
        .withColumn("spend_trend", F.col("spend_90d") - F.col("spend_prior_90d")) \
        .withColumn("avg_order_value_365d", F.when(F.col("orders_365d") > 0,
                                                       F.col("spend_365d") / F.col("orders_365d")).otherwise(0.0)) \
        .withColumn("avg_satisfaction_90d", F.coalesce(F.col("avg_satisfaction_90d"), F.lit(0.0))) \
        .withColumn("days_since_last_interaction", F.least(since("last_interaction_date"), F.lit(NEVER_DAYS)))
    return df.select(*KEY, "last_order_date", *[F.col(c).cast("double").alias(c) for c in NUMERIC_FEATURES],
                     *CATEGORICAL_FEATURES)


def churn_labels(history: DataFrame, order_lines: DataFrame, snapshots: DataFrame, *, horizon_days: int) -> DataFrame:
    """``label`` 1.0 when a customer live at T makes no completed purchase in (T, T + horizon]
    or has no live record left at T + horizon (an explicit cancellation), else 0.0."""
    end = F.date_add(F.col("snapshot_date"), horizon_days)
    live_at_end = live_customers(history, snapshots, at=end).select(*KEY, F.lit(True).alias("still_live"))
    bought = order_lines.where((F.col("status") == "completed") & (F.col("quantity") > 0) & F.col("customer_id").isNotNull()) \
        .select("customer_id", F.col("order_local_date").alias("event_date")) \
        .join(snapshots, (F.col("event_date") > F.col("snapshot_date")) & (F.col("event_date") <= end)) \
        .select(*KEY).distinct().withColumn("bought", F.lit(True))
    live_now = live_customers(history, snapshots).select(*KEY)
    return live_now.join(bought, list(KEY), "left").join(live_at_end, list(KEY), "left").select(
        *KEY, F.when(F.col("bought") & F.col("still_live"), 0.0).otherwise(1.0).alias("label"))


def active_at_snapshot(features: DataFrame, *, active_window_days: int) -> DataFrame:
    """The customers a churn model is about: bought (a completed order) within the window before T."""
    return features.where(F.col("recency_days") < active_window_days)
