"""Scoring inputs for customers the features cannot see yet, and risk bands."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from crm_lakehouse.churn.features import NEVER_DAYS, NUMERIC_FEATURES
from crm_lakehouse.churn.score import risk_band, with_empty_history


def test_a_customer_without_history_at_the_as_of_date_is_scored_as_one_without_orders(spark):
    columns = ", ".join(f"{c} double" for c in NUMERIC_FEATURES)
    known = spark.createDataFrame([("A", dt.date(2026, 1, 2), "eu", *[5.0] * len(NUMERIC_FEATURES))],
                                  f"customer_id string, snapshot_date date, region string, {columns}")
    customers = spark.createDataFrame([("A", "eu"), ("B", "cn")], "customer_id string, c360_region string")
    rows = {r.customer_id: r for r in with_empty_history(customers.join(known, "customer_id", "left")).collect()}
    assert rows["A"].region == "eu" and rows["A"].orders_90d == 5.0
    newcomer = rows["B"]
    assert newcomer.region == "cn"
    assert newcomer.recency_days == newcomer.days_since_last_interaction == float(NEVER_DAYS)
    assert newcomer.orders_90d == newcomer.tenure_days == newcomer.spend_365d == 0.0
    assert all(getattr(newcomer, c) is not None for c in NUMERIC_FEATURES)


def test_risk_bands_start_at_their_thresholds(spark):
    df = spark.createDataFrame([(0.6,), (0.59,), (0.3,), (0.29,)], "p double")
    bands = [r[0] for r in df.select(risk_band(F.col("p"), {"high": 0.6, "medium": 0.3})).collect()]
    assert bands == ["high", "medium", "medium", "low"]
