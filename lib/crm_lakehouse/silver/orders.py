"""``silver.order_lines`` (one row per order line) and ``silver.orders`` (one row per order).

Lines carry their amount in the order's currency and in USD at the rate of the order's local
date, and the golden ``customer_id`` of the customer record they name. When that day's rate has
not arrived yet, the latest earlier one (within :data:`FX_LOOKBACK_DAYS`) is used and
``fx_rate_date`` says so; the batch that brings the day's rate restates the line.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from crm_lakehouse.silver.contracts import MONEY, ORDER_LINES, ORDERS, conform
from crm_lakehouse.silver.quality import Expectation

# Rates arrive daily; a weekend or holiday without a fixing uses the last one before it.
FX_LOOKBACK_DAYS = 7

ORDER_LINE_RULES = [
    Expectation("parseable_record", "NOT is_unparseable", "quarantine"),
    Expectation("has_order_id", "order_id IS NOT NULL", "quarantine"),
    Expectation("has_line_number", "line_number IS NOT NULL", "quarantine"),
    Expectation("has_source_customer_id", "source_customer_id IS NOT NULL", "quarantine"),
    Expectation("parseable_ordered_at", "ordered_at IS NOT NULL AND order_local_date IS NOT NULL", "quarantine"),
    Expectation("has_product_id", "product_id IS NOT NULL", "quarantine"),
    Expectation("positive_quantity", "quantity > 0", "quarantine"),
    Expectation("non_negative_unit_price", "unit_price >= 0", "quarantine"),
    Expectation("known_currency", "is_known_currency", "quarantine"),
    Expectation("fx_rate_found", "usd_per_unit IS NOT NULL", "warn"),
    Expectation("known_customer", "customer_id IS NOT NULL", "warn"),
]


def with_usd(lines: DataFrame, fx_rates: DataFrame) -> DataFrame:
    """Add ``is_known_currency``, ``usd_per_unit`` and ``fx_rate_date`` (the rate for the order's
    local date or the latest one up to :data:`FX_LOOKBACK_DAYS` before it)."""
    known = fx_rates.select(F.col("currency").alias("_known")).distinct()
    marked = lines.join(F.broadcast(known), lines["currency"] == known["_known"], "left") \
        .withColumn("is_known_currency", F.col("_known").isNotNull()).drop("_known")
    rates = fx_rates.select(F.col("currency").alias("_fx_currency"), F.col("rate_date").alias("_rate_date"),
                            F.col("usd_per_unit").alias("_rate"))
    keyed = marked.withColumn("_line", F.monotonically_increasing_id())
    candidates = keyed.join(rates, (F.col("currency") == F.col("_fx_currency"))
                            & (F.col("_rate_date") <= F.col("order_local_date"))
                            & (F.col("_rate_date") >= F.date_sub(F.col("order_local_date"), FX_LOOKBACK_DAYS)), "left")
    latest = Window.partitionBy("_line").orderBy(F.col("_rate_date").desc_nulls_last())
    return candidates.withColumn("_rank", F.row_number().over(latest)).where(F.col("_rank") == 1) \
        .withColumn("usd_per_unit", F.col("_rate")).withColumn("fx_rate_date", F.col("_rate_date")) \
        .drop("_line", "_fx_currency", "_rate_date", "_rate", "_rank")


def with_customer_id(df: DataFrame, identity_map: DataFrame) -> DataFrame:
    """Add the golden ``customer_id`` of (``customer_source``, ``source_customer_id``); null when unknown."""
    ids = identity_map.select(F.col("source").alias("_map_source"), F.col("source_customer_id").alias("_map_id"),
                              F.col("customer_id"))
    return df.join(ids, (F.col("customer_source") == F.col("_map_source"))
                   & (F.col("source_customer_id") == F.col("_map_id")), "left").drop("_map_source", "_map_id")


def order_lines(accepted: DataFrame, batch_id: int) -> DataFrame:
    """Accepted staged lines (with currency, rate and customer id) -> ``silver.order_lines`` rows."""
    net = (F.col("unit_price") * F.col("quantity") - F.coalesce(F.col("discount"), F.lit(0))).cast(MONEY)
    return conform(accepted.select(
        "*",
        F.col("_source").alias("source"), F.col("_region").alias("region"), F.col("_channel").alias("channel"),
        F.lit(batch_id).alias("_batch_id"),
    ).withColumn("discount", F.coalesce(F.col("discount"), F.lit(0).cast(MONEY)))
     .withColumn("net_amount", net)
     .withColumn("net_amount_usd", (net * F.col("usd_per_unit")).cast(MONEY)), ORDER_LINES)


def restate_provisional_usd(stored_lines: DataFrame, fx_rates: DataFrame, batch_id: int) -> DataFrame:
    """Stored lines priced with an earlier day's rate (or none) whose rate is now better known."""
    provisional = stored_lines.where(F.col("fx_rate_date").isNull() | (F.col("fx_rate_date") < F.col("order_local_date")))
    repriced = with_usd(provisional.drop("usd_per_unit").withColumnRenamed("fx_rate_date", "_old_rate_date"), fx_rates)
    improved = repriced.where(F.col("fx_rate_date").isNotNull()
                              & (F.col("_old_rate_date").isNull() | (F.col("fx_rate_date") > F.col("_old_rate_date"))))
    return conform(improved.withColumn("net_amount_usd", (F.col("net_amount") * F.col("usd_per_unit")).cast(MONEY))
                   .withColumn("_batch_id", F.lit(batch_id)), ORDER_LINES)


def orders(lines: DataFrame, batch_id: int) -> DataFrame:
    """``silver.orders`` rows from every line of the given orders."""
    return conform(lines.groupBy("source", "order_id").agg(
        F.first("customer_id", ignorenulls=True).alias("customer_id"),
        F.first("customer_source").alias("customer_source"),
        F.first("source_customer_id").alias("source_customer_id"),
        F.first("region").alias("region"), F.first("channel").alias("channel"),
        F.min("ordered_at").alias("ordered_at"), F.min("order_local_date").alias("order_local_date"),
        F.first("currency").alias("currency"), F.max("status").alias("status"),
        F.first("store_id", ignorenulls=True).alias("store_id"),
        F.count(F.lit(1)).cast("int").alias("line_count"), F.sum("quantity").alias("units"),
        F.sum("net_amount").alias("net_amount"),
        # One line without a rate leaves the order's USD total unknown rather than understated.
        F.when(F.count(F.when(F.col("net_amount_usd").isNull(), 1)) == 0, F.sum("net_amount_usd")).alias("net_amount_usd"),
    ).withColumn("_batch_id", F.lit(batch_id)), ORDERS)
