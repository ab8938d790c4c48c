"""RFM scores, segments and 90-day service metrics on a small hand-built data set with known answers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse.gold.contracts import CUSTOMER_360
from crm_lakehouse.gold.customer_360 import RfmThresholds, active_profiles, crossing_thresholds, customer_360

AS_OF = "2026-06-30"
CUSTOMERS = "customer_id string, full_name string, email string, phone string, gender string, birth_date date, " \
            "city string, address string, country string, region string, home_currency string, " \
            "source_systems array<string>, channels array<string>, first_seen_at timestamp, attributes map<string,string>"
FACTS = "customer_id string, source string, order_id string, order_local_date date, status string, quantity int, " \
        "gross_sales_reporting decimal(18,2), returns_reporting decimal(18,2), channel string"
CONTACTS = "customer_id string, occurred_local_date date, satisfaction_score int"


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def fact(customer: str, order: str, date: dt.date, status: str, amount: str, channel: str, quantity: int = 1) -> tuple:
    """A fact row with the measures gold.sales computes: a sale's amount is gross; a returned sale
    is gross and returned; a reversal (negative quantity) is a return only."""
    value = Decimal(amount)
    gross = value if quantity > 0 and status in ("completed", "returned") else Decimal("0.00")
    back = value if quantity > 0 and status == "returned" else -value if quantity < 0 else Decimal("0.00")
    return (customer, "s", order, date, status, quantity, gross, back, channel)


def test_rfm_scores_segments_and_90_day_service_metrics(spark):
    customers = active_profiles(spark.createDataFrame([
        (cid, "N", f"{cid.lower()}@example.com", None, None, None, "Austin", None, "US", "us", "USD", ["us_web_customers"], ["web"], dt.datetime(2025, 1, 1), None) for cid in "ABCDE"
    ], CUSTOMERS))
    facts = spark.createDataFrame(
        # A: 12 completed orders, the last 10 days ago, 4,000 USD: champion (5, 5, 5).
        [fact("A", f"A{i}", day("2026-06-20") - dt.timedelta(days=20 * i), "completed", "333.34", "web")
         for i in range(12)]
        # B: 3 orders, the last 200 days ago, 450 USD (R=2, F=2, M=3: hibernating); a cancelled order
        # yesterday is not a purchase; an order returned (sold and brought back) and a credit note
        # of 50 count as returns: lifetime value 400.
        + [fact("B", f"B{i}", day("2025-12-12") - dt.timedelta(days=30 * i), "completed", "150.00", "store")
           for i in range(3)]
        + [fact("B", "B9", day("2026-06-29"), "cancelled", "999.00", "app"),
           fact("B", "B8", day("2026-06-28"), "returned", "100.00", "app"),
           fact("B", "CB1", day("2026-06-27"), "cancelled", "-50.00", "store", quantity=-1)]
        # C: one order 400 days ago: lost.
        + [fact("C", "C0", day("2025-05-26"), "completed", "50.00", "web")]
        # D: one order 5 days ago, split over two lines: new customer, one order of 80 USD.
        + [fact("D", "D0", day("2026-06-25"), "completed", "30.00", "web"),
           fact("D", "D0", day("2026-06-25"), "completed", "50.00", "web")],
        FACTS)
    contacts = spark.createDataFrame([
        ("A", day("2026-06-30"), 4), ("A", day("2026-04-02"), 2),   # 2026-04-02 is day 90 of the window
        ("A", day("2026-04-01"), 1),                                 # one day outside it
        ("B", day("2026-05-01"), None),                              # unscored: counted, not averaged
    ], CONTACTS)
    previous = spark.createDataFrame([("A", "active", 0.9, "high", "3")],
                                     "customer_id string, customer_status string, churn_probability double, "
                                     "churn_risk_band string, churn_model_version string")
    actual = customer_360(customers, facts, contacts, previous, as_of=AS_OF, thresholds=RfmThresholds(), batch_id=7) \
        .select("customer_id", "customer_status", "orders_count", "gross_sales_reporting", "returns_reporting",
                "lifetime_value_reporting", "avg_order_value_reporting", "first_order_date", "last_order_date",
                "recency_score", "frequency_score", "monetary_score", "rfm_segment", "interactions_90d",
                "avg_satisfaction_90d", "churn_probability", "channels")
    expected = spark.createDataFrame([
        ("A", "active", 12, Decimal("4000.08"), Decimal("0.00"), Decimal("4000.08"), Decimal("333.34"),
         day("2025-11-12"), day("2026-06-20"), 5, 5, 5, "champions", 2, 3.0, 0.9, ["web"]),
        ("B", "active", 3, Decimal("550.00"), Decimal("150.00"), Decimal("400.00"), Decimal("133.33"),
         day("2025-10-13"), day("2025-12-12"), 2, 2, 3, "hibernating", 1, None, None, ["app", "store", "web"]),
        ("C", "active", 1, Decimal("50.00"), Decimal("0.00"), Decimal("50.00"), Decimal("50.00"), day("2025-05-26"),
         day("2025-05-26"), 1, 1, 1, "lost", 0, None, None, ["web"]),
        ("D", "active", 1, Decimal("80.00"), Decimal("0.00"), Decimal("80.00"), Decimal("80.00"), day("2026-06-25"),
         day("2026-06-25"), 5, 1, 1, "new customers", 0, None, None, ["web"]),
        ("E", "active", 0, Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), None, None, None, 0, 0, 0, "prospect",
         0, None, None, ["web"]),
    ], "customer_id string, customer_status string, orders_count long, gross_sales_reporting decimal(18,2), "
       "returns_reporting decimal(18,2), lifetime_value_reporting decimal(18,2), avg_order_value_reporting decimal(18,2), "
       "first_order_date date, last_order_date date, recency_score int, frequency_score int, monetary_score int, "
       "rfm_segment string, interactions_90d long, avg_satisfaction_90d double, churn_probability double, "
       "channels array<string>")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    rows = customer_360(customers, facts, contacts, previous, as_of=AS_OF, thresholds=RfmThresholds(), batch_id=7)
    assert rows.columns == CUSTOMER_360.columns
    assert tuple(rows.where("customer_id = 'A'").select("email", "city").first()) == ("a@example.com", "Austin")


def test_only_customers_crossing_a_bound_are_recomputed_when_time_passes(spark):
    last_orders = spark.createDataFrame([("A", day("2026-05-31")), ("B", day("2026-05-30")), ("C", day("2026-06-29"))],
                                        "customer_id string, last_order_date date")
    contacts = spark.createDataFrame([("C", day("2026-04-01"), 3), ("D", day("2026-04-02"), 3)], CONTACTS)
    crossed = crossing_thresholds(last_orders, contacts, old_as_of="2026-06-29", new_as_of="2026-06-30",
                                  thresholds=RfmThresholds())
    # A: 29 -> 30 days, still within 30; B: 30 -> 31 days crosses; C's interaction leaves the window.
    assert sorted(r["customer_id"] for r in crossed.collect()) == ["B", "C"]
    assert crossed.where(F.col("customer_id").isNull()).count() == 0
