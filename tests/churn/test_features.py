"""Churn features and labels: known answers on tiny data, and no leakage from after the snapshot."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.churn.features import churn_features, churn_labels, snapshot_frame
from crm_lakehouse.silver import contracts as silver

T = dt.date(2026, 3, 31)
HISTORY = "customer_id string, operation string, region string, valid_from timestamp, valid_to timestamp"
LINES = "customer_id string, order_id string, order_local_date date, status string, channel string, " \
        "net_amount_reporting decimal(18,2)"
CONTACTS = "customer_id string, interaction_type string, occurred_local_date date, satisfaction_score int"


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def small_lakehouse(spark):
    history = spark.createDataFrame([
        ("A", "insert", "eu", at("2025-01-01 10:00:00"), None),
        ("B", "insert", "us", at("2026-01-01 10:00:00"), at("2026-03-01 00:00:00")),
        ("B", "delete", "us", at("2026-03-01 00:00:00"), at("2026-03-01 00:00:00")),
        ("C", "insert", "cn", at("2026-02-15 09:00:00"), None),
    ], HISTORY)
    lines = spark.createDataFrame([
        ("A", "A1", day("2026-03-31"), "completed", "web", Decimal("100.00")),   # on T: counts
        ("A", "A1", day("2026-03-31"), "completed", "web", Decimal("20.00")),    # same order, 2nd line
        ("A", "A2", day("2026-01-15"), "completed", "store", Decimal("50.00")),  # 75 days before T
        ("A", "A3", day("2025-11-01"), "completed", "web", Decimal("30.00")),    # 150 days: prior 90
        ("A", "A4", day("2026-03-20"), "returned", "web", Decimal("80.00")),     # not a purchase
        ("C", "C1", day("2026-02-20"), "completed", "app", Decimal("10.00")),
    ], LINES).withColumn("quantity", F.lit(1))
    contacts = spark.createDataFrame([
        ("A", "ticket", day("2026-03-10"), 2),
        ("A", "campaign_response", day("2026-02-01"), None),
        ("A", "call", day("2025-12-01"), 4),                                     # 120 days: outside 90
    ], CONTACTS)
    return history, lines, contacts


def test_features_count_windows_up_to_and_including_the_snapshot_date(spark):
    history, lines, contacts = small_lakehouse(spark)
    features = churn_features(history, lines, contacts, snapshot_frame(spark, [T]))
    actual = features.select("customer_id", "region", "tenure_days", "recency_days", "orders_30d", "orders_90d",
                             "orders_prior_90d", "lifetime_orders", "spend_90d", "spend_prior_90d",
                             "spend_trend", "channels_used_365d", "returns_365d", "interactions_90d",
                             "tickets_90d", "scored_interactions_90d", "avg_satisfaction_90d",
                             "days_since_last_interaction")
    # B's only record was deleted before T: B is not a customer at T.
    expected = spark.createDataFrame([
        ("A", "eu", 454.0, 0.0, 1.0, 2.0, 1.0, 3.0, 170.0, 30.0, 140.0, 2.0, 1.0, 2.0, 1.0, 1.0, 2.0, 21.0),
        ("C", "cn", 44.0, 39.0, 0.0, 1.0, 0.0, 1.0, 10.0, 0.0, 10.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 730.0),
    ], actual.schema)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_features_at_a_snapshot_ignore_everything_that_happens_after_it(spark):
    history, lines, contacts = small_lakehouse(spark)
    snapshots = snapshot_frame(spark, [T])
    before = churn_features(history, lines, contacts, snapshots)
    # The future: A orders again and complains, C's record is updated then deleted, D signs up.
    later_history = history.where("customer_id != 'C'").unionByName(spark.createDataFrame([
        ("C", "insert", "cn", at("2026-02-15 09:00:00"), at("2026-04-01 00:00:01")),
        ("C", "update", "cn", at("2026-04-01 00:00:01"), at("2026-05-01 00:00:00")),
        ("C", "delete", "cn", at("2026-05-01 00:00:00"), at("2026-05-01 00:00:00")),
        ("D", "insert", "us", at("2026-04-02 08:00:00"), None),
    ], HISTORY))
    later_lines = lines.unionByName(spark.createDataFrame([
        ("A", "A9", day("2026-04-01"), "completed", "web", Decimal("999.00")),
        ("D", "D1", day("2026-04-03"), "completed", "web", Decimal("5.00")),
    ], LINES).withColumn("quantity", F.lit(1)))
    later_contacts = contacts.unionByName(spark.createDataFrame([("A", "ticket", day("2026-04-01"), 1)], CONTACTS))
    after = churn_features(later_history, later_lines, later_contacts, snapshots)
    assert_df_equality(after, before, ignore_row_order=True)
    assert after.count() == 2


def test_churn_label_is_no_purchase_within_the_horizon_or_a_cancellation(spark):
    history = spark.createDataFrame([
        ("stays", "insert", "eu", at("2025-01-01 00:00:00"), None),
        ("lapses", "insert", "eu", at("2025-01-01 00:00:00"), None),
        ("cancels", "insert", "eu", at("2025-01-01 00:00:00"), at("2026-05-01 00:00:00")),
        ("cancels", "delete", "eu", at("2026-05-01 00:00:00"), at("2026-05-01 00:00:00")),
        ("late", "insert", "eu", at("2025-01-01 00:00:00"), None),
    ], HISTORY)
    lines = spark.createDataFrame([
        ("stays", "S1", day("2026-06-29"), "completed", "web", Decimal("1.00")),    # day 90: inside
        ("lapses", "L1", day("2026-04-10"), "cancelled", "web", Decimal("1.00")),  # not a purchase
        ("cancels", "X1", day("2026-04-10"), "completed", "web", Decimal("1.00")),
        ("late", "Z1", day("2026-06-30"), "completed", "web", Decimal("1.00")),    # day 91: outside
    ], LINES).withColumn("quantity", F.lit(1))
    labels = churn_labels(history, lines, snapshot_frame(spark, [T]), horizon_days=90)
    expected = spark.createDataFrame([("stays", T, 0.0), ("lapses", T, 1.0), ("cancels", T, 1.0), ("late", T, 1.0)],
                                     labels.schema)
    assert_df_equality(labels, expected, ignore_row_order=True, ignore_nullable=True)


def test_features_from_the_lakehouse_equal_features_from_silver_as_it_stood_at_the_snapshot(spark, one_shot):
    """Cut every silver input back to what was known at T (history versions still open at T
    had no end yet) and the features at T come out the same."""
    def table(contract):
        return spark.read.format("delta").load(silver.table_path(one_shot, contract))

    history, lines, contacts = (table(silver.CUSTOMERS_HISTORY), table(silver.ORDER_LINES), table(silver.INTERACTIONS))
    snapshot = dt.date(2025, 9, 30)
    end_of_t = F.lit(dt.datetime(2025, 10, 1))
    history_then = history.where(F.col("valid_from") < end_of_t).withColumn(
        "valid_to", F.when(F.col("valid_to") < end_of_t, F.col("valid_to")))
    lines_then = lines.where(F.col("order_local_date") <= F.lit(snapshot))
    contacts_then = contacts.where(F.col("occurred_local_date") <= F.lit(snapshot))
    assert lines.count() > lines_then.count() and history.count() > history_then.count()

    snapshots = snapshot_frame(spark, [snapshot])
    from_everything = churn_features(history, lines, contacts, snapshots)
    from_then = churn_features(history_then, lines_then, contacts_then, snapshots)
    assert from_everything.count() > 100
    assert_df_equality(from_everything, from_then, ignore_row_order=True)
