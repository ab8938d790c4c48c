"""``silver.order_lines`` (one row per order line) and ``silver.orders`` (one row per order).

Lines carry their amount in the order's currency and in the reporting currency
(``reporting_currency``, USD by default) at the rate of the order's local date; a line already
in the reporting currency needs no rate. When that day's rate has not arrived yet, the latest
earlier one (within :data:`FX_LOOKBACK_DAYS`) is used and ``fx_rate_date`` says so; the batch
that brings the day's rate restates the line.

Returns are sales events, not bad data: a line with a negative quantity is kept when it is a
return or a cancellation (its status says so, or the source declares ``negative_quantity:
return``), and its amount is negative. A line without a customer (a guest checkout) is kept.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from crm_lakehouse.silver.contracts import MONEY, ORDER_LINES, ORDERS, conform
from crm_lakehouse.silver.quality import Expectation

# Rates arrive daily; a weekend or holiday without a fixing uses the last one before it.
FX_LOOKBACK_DAYS = 7

_NOT_NULL = "silver.order_lines' NOT NULL {}"
RETURNS_FIX = ("to keep returns and cancellations, map their status (returned, cancelled) with a value map or an "
               "expression, or set `negative_quantity: return` on the source")
ORDER_LINE_RULES = [
    Expectation("parseable_record", "NOT is_unparseable", "quarantine"),
    Expectation("has_order_id", "order_id IS NOT NULL", "quarantine", guards=_NOT_NULL.format("order_id")),
    Expectation("has_line_number", "line_number IS NOT NULL", "quarantine", guards=_NOT_NULL.format("line_number")),
    Expectation("parseable_ordered_at", "ordered_at IS NOT NULL AND order_local_date IS NOT NULL", "quarantine",
                guards=_NOT_NULL.format("ordered_at")),
    Expectation("has_product_id", "product_id IS NOT NULL", "quarantine", guards=_NOT_NULL.format("product_id")),
    Expectation("known_status", "status IN ('completed', 'returned', 'cancelled', 'pending')", "quarantine",
                guards="silver.order_lines' CHECK constraint known_status",
                fix_hint="map the source's statuses: status: {column: ..., values: {Shipped: completed, ...}, default: completed}"),
    Expectation("positive_quantity", "quantity > 0 OR (quantity < 0 AND status IN ('returned', 'cancelled'))",
                "quarantine", guards="silver.order_lines' CHECK constraint positive_quantity", fix_hint=RETURNS_FIX),
    Expectation("non_negative_unit_price", "unit_price >= 0", "quarantine",
                guards="silver.order_lines' CHECK constraint non_negative_unit_price"),
    Expectation("currency_code", "currency RLIKE '^[A-Z]{3}$'", "quarantine",
                guards="silver.order_lines' CHECK constraint currency_code"),
    Expectation("known_currency", "is_known_currency", "quarantine"),
    Expectation("fx_rate_found", "fx_rate IS NOT NULL", "warn"),
    # Guest checkouts: kept, and shown in the marts under the unknown-customer member.
    Expectation("has_customer_reference", "source_customer_id IS NOT NULL", "warn"),
    Expectation("known_customer", "source_customer_id IS NULL OR customer_id IS NOT NULL", "warn"),
]


def with_reporting_amounts(lines: DataFrame, fx_rates: DataFrame, reporting_currency: str) -> DataFrame:
    """Add ``is_known_currency``, ``fx_rate`` (one unit of the line's currency in the reporting
    currency) and ``fx_rate_date`` (the rate for the order's local date or the latest one up to
    :data:`FX_LOOKBACK_DAYS` before it; null for a line already in the reporting currency)."""
    known = fx_rates.select(F.col("currency").alias("_known")).distinct()
    in_reporting = F.col("currency") == F.lit(reporting_currency)
    marked = lines.join(F.broadcast(known), lines["currency"] == known["_known"], "left") \
        .withColumn("is_known_currency", F.coalesce(in_reporting | F.col("_known").isNotNull(), F.lit(False))) \
        .drop("_known")
    rates = fx_rates.select(F.col("currency").alias("_fx_currency"), F.col("rate_date").alias("_rate_date"),
                            F.col("rate").alias("_rate"))
    keyed = marked.withColumn("_line", F.monotonically_increasing_id())
    candidates = keyed.join(rates, ~in_reporting & (F.col("currency") == F.col("_fx_currency"))
                            & (F.col("_rate_date") <= F.col("order_local_date"))
                            & (F.col("_rate_date") >= F.date_sub(F.col("order_local_date"), FX_LOOKBACK_DAYS)), "left")
    latest = Window.partitionBy("_line").orderBy(F.col("_rate_date").desc_nulls_last())
    return candidates.withColumn("_rank", F.row_number().over(latest)).where(F.col("_rank") == 1) \
        .withColumn("fx_rate", F.when(in_reporting, F.lit(1).cast("decimal(18,6)")).otherwise(F.col("_rate"))) \
        .withColumn("fx_rate_date", F.col("_rate_date")) \
        .drop("_line", "_fx_currency", "_rate_date", "_rate", "_rank")


def with_customer_id(df: DataFrame, identity_map: DataFrame) -> DataFrame:
    """Add the golden ``customer_id`` of (``customer_source``, ``source_customer_id``); null when unknown."""
    ids = identity_map.select(F.col("source").alias("_map_source"), F.col("source_customer_id").alias("_map_id"),
                              F.col("customer_id"))
    return df.join(ids, (F.col("customer_source") == F.col("_map_source"))
                   & (F.col("source_customer_id") == F.col("_map_id")), "left").drop("_map_source", "_map_id")


def line_amount(unit_price: Column, quantity: Column, line_total: Column, discount: Column) -> Column:
    """The line's amount after discount in its currency, negative for a return line. A line total
    counts in magnitude: the quantity's sign says whether the line is a sale or a return."""
    signed = lambda amount: F.when(quantity < 0, -F.abs(amount)).otherwise(F.abs(amount))  # noqa: E731
    gross = F.coalesce(signed(line_total), unit_price * quantity)
    return (gross - signed(F.coalesce(discount, F.lit(0)))).cast(MONEY)


def order_lines(accepted: DataFrame, batch_id: int) -> DataFrame:
    """Accepted staged lines (with currency, rate and customer id) -> ``silver.order_lines`` rows."""
    net = line_amount(F.col("unit_price"), F.col("quantity"), F.col("line_total"), F.col("discount"))
    return conform(accepted.select(
        "*",
        F.col("_source").alias("source"), F.col("_region").alias("region"), F.col("_channel").alias("channel"),
        F.lit(batch_id).alias("_batch_id"),
    ).withColumn("discount", F.coalesce(F.col("discount"), F.lit(0).cast(MONEY)))
     .withColumn("net_amount", net)
     .withColumn("net_amount_reporting", (net * F.col("fx_rate")).cast(MONEY)), ORDER_LINES)


def restate_provisional_amounts(stored_lines: DataFrame, fx_rates: DataFrame, reporting_currency: str,
                                batch_id: int) -> DataFrame:
    """Stored lines priced with an earlier day's rate (or none) whose rate is now better known."""
    provisional = stored_lines.where((F.col("currency") != F.lit(reporting_currency)) & (
        F.col("fx_rate_date").isNull() | (F.col("fx_rate_date") < F.col("order_local_date"))))
    repriced = with_reporting_amounts(provisional.drop("fx_rate").withColumnRenamed("fx_rate_date", "_old_rate_date"),
                                      fx_rates, reporting_currency)
    improved = repriced.where(F.col("fx_rate_date").isNotNull()
                              & (F.col("_old_rate_date").isNull() | (F.col("fx_rate_date") > F.col("_old_rate_date"))))
    return conform(improved.withColumn("net_amount_reporting", (F.col("net_amount") * F.col("fx_rate")).cast(MONEY))
                   .withColumn("_batch_id", F.lit(batch_id)), ORDER_LINES)


def orders(lines: DataFrame, batch_id: int) -> DataFrame:
    """``silver.orders`` rows from every line of the given orders."""
    return conform(lines.groupBy("source", "order_id").agg(
        F.first("customer_id", ignorenulls=True).alias("customer_id"),
        F.first("customer_source").alias("customer_source"),
        F.first("source_customer_id", ignorenulls=True).alias("source_customer_id"),
        F.first("region").alias("region"), F.first("channel").alias("channel"),
        F.first("country", ignorenulls=True).alias("country"),
        F.min("ordered_at").alias("ordered_at"), F.min("order_local_date").alias("order_local_date"),
        F.first("currency").alias("currency"), F.max("status").alias("status"),
        F.first("store_id", ignorenulls=True).alias("store_id"),
        F.count(F.lit(1)).cast("int").alias("line_count"), F.sum("quantity").alias("units"),
        F.sum("net_amount").alias("net_amount"),
        # One line without a rate leaves the order's total unknown rather than understated.
        F.when(F.count(F.when(F.col("net_amount_reporting").isNull(), 1)) == 0,
               F.sum("net_amount_reporting")).alias("net_amount_reporting"),
    ).withColumn("_batch_id", F.lit(batch_id)), ORDERS)
