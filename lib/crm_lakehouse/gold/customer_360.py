"""``gold.customer_360``: one row per golden customer — profile, purchases, RFM, service, churn.

The profile carries silver.customers' contact and demographic columns as they are, so the
analysts' customer view (sql/analytics.py, which masks them) reads this one table.

RFM scores use fixed thresholds (``gold.rfm`` in conf/base.yaml), not quantiles: a customer's
score then depends on their own history and the as-of date only, so a daily run recomputes the
customers whose data changed or who crossed a threshold, not everyone. Orders count completed
sales; lifetime value is net sales (gross sales less returns, see gold.sales). The as-of date is
the data's own latest order or interaction date (for customers without either, the latest customer record's date), so
reruns over the same data give the same scores. Customers deleted in every source keep their row
(``customer_status = 'deleted'``, no PII, not scored) so their sales keep naming a customer; the
``unknown`` member holds sales without a known customer.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.config import RfmThresholds
from crm_lakehouse.gold.contracts import CUSTOMER_360, MONEY, PROFILE_FROM_SILVER, UNKNOWN_CUSTOMER_ID
from crm_lakehouse.gold.sales import is_sale
from crm_lakehouse.tables import conform

CHURN_COLUMNS = ("churn_probability", "churn_risk_band", "churn_model_version")


def recency_score(days: Column, bounds: tuple[int, ...]) -> Column:
    """5 for an order within ``bounds[0]`` days, ... 1 beyond ``bounds[-1]``; 0 without orders."""
    score = F.when(days.isNull(), F.lit(0))
    for points, bound in zip((5, 4, 3, 2), bounds):
        score = score.when(days <= bound, F.lit(points))
    return score.otherwise(F.lit(1))


def ascending_score(value: Column, bounds: tuple[float, ...], *, has_orders: Column) -> Column:
    """1 below ``bounds[0]``, 2 from it, ... 5 from ``bounds[-1]``; 0 without orders."""
    score = F.when(~has_orders, F.lit(0))
    for points, bound in zip((5, 4, 3, 2), reversed(bounds)):
        score = score.when(value >= bound, F.lit(points))
    return score.otherwise(F.lit(1))


def rfm_segment(r: Column, f: Column) -> Column:
    """Readable segment from recency and frequency scores (the classic RFM grid)."""
    return (F.when(f == 0, "prospect")
            .when((r >= 4) & (f >= 4), "champions")
            .when((r >= 3) & (f >= 3), "loyal")
            .when((r >= 4) & (f == 1), "new customers")
            .when(r >= 4, "promising")
            .when(r == 3, "needs attention")
            .when((r == 2) & (f >= 3), "at risk")
            .when(r == 2, "hibernating")
            .otherwise("lost"))


PROFILE_COLUMNS = ("customer_id", "customer_status", "deleted_at", "full_name", *PROFILE_FROM_SILVER, "country",
                   "region", "home_currency", "source_systems", "channels", "first_seen_at", "attributes")


def _no_personal_data() -> list[Column]:
    """The profile's personal columns of a member that has none (deleted, unknown), as nulls."""
    types = {f.name: f.dataType for f in CUSTOMER_360.schema.fields}
    return [F.lit(None).cast(types[c]).alias(c) for c in ("full_name", *PROFILE_FROM_SILVER, "country")]


def active_profiles(customers: DataFrame) -> DataFrame:
    """silver.customers rows -> profiles of active customers."""
    return customers.select(*[F.col(c) for c in PROFILE_COLUMNS if c not in ("customer_status", "deleted_at")],
                            F.lit("active").alias("customer_status"), F.lit(None).cast("timestamp").alias("deleted_at"))


def deleted_profiles(identity_map: DataFrame, customer_ids: DataFrame, currency_of_region: dict[str, str]) -> DataFrame:
    """Profiles of customers whose every source record was deleted: no PII (no name, contact or
    country), only where they came from and when they went. (customer_id + profile columns)"""
    currency = F.create_map(*[p for k, v in sorted(currency_of_region.items()) for p in (F.lit(k), F.lit(v))])
    records = identity_map.join(customer_ids, "customer_id", "left_semi")
    gone = records.groupBy("customer_id").agg(
        F.min(F.col("is_deleted").cast("int")).alias("_all_deleted"),
        F.max_by("region", F.coalesce("deleted_at", "first_seen_at")).alias("region"),
        F.array_sort(F.collect_set("source")).alias("source_systems"),
        F.array_sort(F.collect_set("channel")).alias("channels"),
        F.min("first_seen_at").alias("first_seen_at"), F.max("deleted_at").alias("deleted_at"),
    ).where("_all_deleted = 1")
    return gone.select("customer_id", F.lit("deleted").alias("customer_status"), "deleted_at", *_no_personal_data(),
                       "region", F.element_at(currency, F.col("region")).alias("home_currency"), "source_systems",
                       "channels", "first_seen_at", F.lit(None).cast("map<string,string>").alias("attributes"))


def unknown_profile(fact_sales: DataFrame, reporting_currency: str) -> DataFrame:
    """The ``unknown`` member's profile from its fact rows (none when it has none)."""
    lines = fact_sales.where(F.col("customer_id") == UNKNOWN_CUSTOMER_ID)
    return lines.groupBy("customer_id").agg(
        F.array_sort(F.collect_set("source")).alias("source_systems"),
        F.array_sort(F.collect_set("channel")).alias("channels"), F.min("ordered_at").alias("first_seen_at"),
    ).select("customer_id", F.lit("unknown").alias("customer_status"), F.lit(None).cast("timestamp").alias("deleted_at"),
             *_no_personal_data(), F.lit("unknown").alias("region"), F.lit(reporting_currency).alias("home_currency"),
             "source_systems", "channels", "first_seen_at", F.lit(None).cast("map<string,string>").alias("attributes"))


def customer_360(profiles: DataFrame, fact_sales: DataFrame, interactions: DataFrame, previous: DataFrame, *,
                 as_of: str, thresholds: RfmThresholds, batch_id: int) -> DataFrame:
    """Rows for the customers in ``profiles`` (active, deleted and unknown profiles, already
    restricted to the ones to recompute); churn columns are carried over from ``previous``
    (gold.customer_360) for active customers only: the others are not scored."""
    as_of_date = F.lit(as_of).cast("date")
    sold = is_sale(F.col("quantity"), F.col("status"))
    sales = fact_sales.groupBy("customer_id").agg(
        F.min(F.when(sold, F.col("order_local_date"))).alias("first_order_date"),
        F.max(F.when(sold, F.col("order_local_date"))).alias("last_order_date"),
        F.countDistinct(F.when(sold, F.struct("source", "order_id"))).alias("orders_count"),
        F.sum("gross_sales_reporting").cast(MONEY).alias("gross_sales_reporting"),
        F.sum("returns_reporting").cast(MONEY).alias("returns_reporting"),
        F.array_sort(F.collect_set("channel")).alias("order_channels"))
    window_start = F.date_sub(as_of_date, thresholds.interaction_window_days - 1)
    recent = interactions.where((F.col("occurred_local_date") >= window_start) & (F.col("occurred_local_date") <= as_of_date)) \
        .groupBy("customer_id").agg(F.count(F.lit(1)).alias("interactions_90d"),
                                    F.avg("satisfaction_score").alias("avg_satisfaction_90d"))
    churn = previous.where(F.col("customer_status") == "active").select("customer_id", *CHURN_COLUMNS)
    df = profiles.join(sales, "customer_id", "left").join(recent, "customer_id", "left") \
        .join(churn.join(profiles.where(F.col("customer_status") == "active").select("customer_id"), "customer_id",
                         "left_semi"), "customer_id", "left")
    orders = F.coalesce(F.col("orders_count"), F.lit(0))
    has_orders = orders > 0
    zero = F.lit(0).cast(MONEY)
    gross, back = F.coalesce(F.col("gross_sales_reporting"), zero), F.coalesce(F.col("returns_reporting"), zero)
    ltv = (gross - back).cast(MONEY)
    df = df.select(
        "*",
        F.array_sort(F.array_union(F.col("channels"), F.coalesce(F.col("order_channels"), F.array().cast("array<string>"))))
        .alias("all_channels"),
        orders.alias("orders"), gross.alias("gross"), back.alias("back"), ltv.alias("ltv"),
        recency_score(F.datediff(as_of_date, F.col("last_order_date")), thresholds.recency_days).alias("recency_score"),
        ascending_score(orders, thresholds.frequency_orders, has_orders=has_orders).alias("frequency_score"),
        ascending_score(ltv, thresholds.monetary, has_orders=has_orders).alias("monetary_score"),
    )
    return conform(df.select(
        "customer_id", "customer_status", "deleted_at", "full_name", *PROFILE_FROM_SILVER, "country", "region",
        "home_currency", "source_systems", F.col("all_channels").alias("channels"), "first_seen_at", "first_order_date",
        "last_order_date", F.col("orders").alias("orders_count"), F.col("gross").alias("gross_sales_reporting"),
        F.col("back").alias("returns_reporting"), F.col("ltv").alias("lifetime_value_reporting"),
        F.when(has_orders, (F.col("ltv") / F.col("orders")).cast(MONEY)).alias("avg_order_value_reporting"),
        "recency_score", "frequency_score", "monetary_score",
        # A segment describes a customer one can still win or keep: not a deleted one or the guests.
        F.when(F.col("customer_status") == "active", rfm_segment(F.col("recency_score"), F.col("frequency_score")))
        .otherwise(F.col("customer_status")).alias("rfm_segment"),
        F.coalesce(F.col("interactions_90d"), F.lit(0)).alias("interactions_90d"), "avg_satisfaction_90d",
        "attributes", *CHURN_COLUMNS, F.lit(batch_id).alias("_batch_id"),
    ), CUSTOMER_360)


def crossing_thresholds(last_order_dates: DataFrame, interactions: DataFrame, *, old_as_of: str, new_as_of: str,
                        thresholds: RfmThresholds) -> DataFrame:
    """Customers whose scores change only because time passed: a recency bound or the end of the
    interaction window fell between the two as-of dates. (customer_id)"""
    old, new = F.lit(old_as_of).cast("date"), F.lit(new_as_of).cast("date")
    last = F.col("last_order_date")
    crossed = F.lit(False)
    for bound in thresholds.recency_days:
        crossed = crossed | ((F.datediff(old, last) <= bound) & (F.datediff(new, last) > bound))
    by_recency = last_order_dates.where(crossed).select("customer_id")
    window = thresholds.interaction_window_days
    left_window = interactions.where((F.col("occurred_local_date") < F.date_sub(new, window - 1))
                                     & (F.col("occurred_local_date") >= F.date_sub(old, window - 1))).select("customer_id")
    return by_recency.unionByName(left_window).where(F.col("customer_id").isNotNull()).distinct()
