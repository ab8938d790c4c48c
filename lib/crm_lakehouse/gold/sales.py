"""``gold.fact_sales`` (one row per order line), ``gold.sales_daily`` (one row per local order
date x region x country x channel x product category) and ``gold.sales_monthly`` (month x
region x country x channel, the dashboard's grain).

Every line carries three measures in the reporting currency that add up in any slice:

- ``gross_sales_reporting``: what was sold — completed lines, and returned ones (sold, then
  returned); cancelled orders were never fulfilled and pending ones are not sold yet;
- ``returns_reporting``: what came back, as a positive amount — a returned sale, or a reversal
  line (negative quantity: a credit note, a cancellation invoice);
- ``net_sales_reporting`` = gross − returns: revenue.

A line's country is its own (ship-to, invoice country) when the source has one, else its
customer's. Lines without a known customer belong to the ``unknown`` customer member.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.gold.contracts import FACT_SALES, MONEY, SALES_DAILY, SALES_MONTHLY, UNKNOWN_CUSTOMER_ID
from crm_lakehouse.tables import conform

UNKNOWN_CATEGORY = "unknown"
# CLDR's "unknown region": sales_daily groups lines whose country nobody gave under it.
UNKNOWN_COUNTRY = "ZZ"
GROUP = ["sales_date", "region", "country", "channel", "category"]
MONTH_GROUP = ["month", "region", "country", "channel"]


def _zero() -> Column:
    return F.lit(0).cast(MONEY)


def gross_sales(amount: Column, quantity: Column, status: Column) -> Column:
    return F.when((quantity > 0) & status.isin("completed", "returned"), amount).otherwise(_zero()).cast(MONEY)


def returns(amount: Column, quantity: Column, status: Column) -> Column:
    return (F.when((quantity > 0) & (status == "returned"), amount)
            .when((quantity < 0) & (status != "pending"), -amount).otherwise(_zero())).cast(MONEY)


def is_sale(quantity: Column, status: Column) -> Column:
    """A line that counts as sold and kept (its order counts in ``orders``)."""
    return (quantity > 0) & (status == "completed")


def net_units(quantity: Column, status: Column) -> Column:
    """Units sold and kept: a completed line's quantity, a reversal line's (negative) one; a
    returned sale nets to nothing."""
    return F.when(is_sale(quantity, status) | ((quantity < 0) & (status != "pending")), quantity).otherwise(0)


def fact_sales(order_lines: DataFrame, products: DataFrame, customers: DataFrame, batch_id: int) -> DataFrame:
    """silver.order_lines rows (with the product's name and category, and the customer's country
    for lines without their own) -> fact_sales rows."""
    catalog = products.select("product_id", "product_name", "category")
    countries = customers.select("customer_id", F.col("country").alias("_customer_country"))
    amount = F.coalesce(F.col("net_amount_reporting"), _zero())
    quantity, status = F.col("quantity"), F.col("status")
    gross, back = gross_sales(amount, quantity, status), returns(amount, quantity, status)
    lines = order_lines.drop("_batch_id").join(F.broadcast(catalog), "product_id", "left") \
        .join(countries, "customer_id", "left")
    return conform(lines.select(
        "*", F.to_date("ordered_at").alias("order_date_utc"),
        F.coalesce(F.col("category"), F.lit(UNKNOWN_CATEGORY)).alias("_category"),
        F.coalesce(F.col("customer_id"), F.lit(UNKNOWN_CUSTOMER_ID)).alias("_customer_id"),
        F.coalesce(F.col("country"), F.col("_customer_country")).alias("_country"),
        gross.alias("gross_sales_reporting"), back.alias("returns_reporting"),
        (gross - back).cast(MONEY).alias("net_sales_reporting"), F.lit(batch_id).alias("_batch_id"),
    ).drop("category", "customer_id", "country").withColumnRenamed("_category", "category")
        .withColumnRenamed("_customer_id", "customer_id").withColumnRenamed("_country", "country"), FACT_SALES)


def sales_groups(facts: DataFrame) -> DataFrame:
    """The (date, region, country, channel, category) groups the given fact rows fall in."""
    return facts.select(F.col("order_local_date").alias("sales_date"), "region",
                        F.coalesce("country", F.lit(UNKNOWN_COUNTRY)).alias("country"), "channel", "category").distinct()


def sales_daily(facts: DataFrame, batch_id: int) -> DataFrame:
    """sales_daily rows from every fact row of the groups to compute; a group with neither
    sales nor returns (only cancelled or pending orders) has no row."""
    return conform(_sales(facts, F.col("order_local_date").alias("sales_date"), "category")
                   .withColumn("_batch_id", F.lit(batch_id)), SALES_DAILY)


def sales_monthly(facts: DataFrame, batch_id: int) -> DataFrame:
    """sales_monthly rows from every fact row of the months to compute, as :func:`sales_daily`."""
    return conform(_sales(facts, F.trunc("order_local_date", "month").alias("month"))
                   .withColumn("_batch_id", F.lit(batch_id)), SALES_MONTHLY)


def month_groups(groups: DataFrame) -> DataFrame:
    """The sales_monthly groups that :func:`sales_groups` (daily groups) fall in."""
    return groups.select(F.trunc("sales_date", "month").alias("month"), "region", "country", "channel").distinct()


def _sales(facts: DataFrame, period: Column, *more: str) -> DataFrame:
    """The measures per (period, region, country, channel, *more) with sales or returns."""
    sold = is_sale(F.col("quantity"), F.col("status"))
    known = F.col("customer_id") != F.lit(UNKNOWN_CUSTOMER_ID)
    grouped = facts.groupBy(period, "region", F.coalesce("country", F.lit(UNKNOWN_COUNTRY)).alias("country"),
                            "channel", *more).agg(
        F.countDistinct(F.when(sold, F.struct("source", "order_id"))).alias("orders"),
        # Distinct known customers: the unknown member is many guests, not one customer.
        F.countDistinct(F.when(sold & known, F.col("customer_id"))).alias("customers"),
        F.sum(net_units(F.col("quantity"), F.col("status"))).alias("units"),
        F.sum("gross_sales_reporting").cast(MONEY).alias("gross_sales_reporting"),
        F.sum("returns_reporting").cast(MONEY).alias("returns_reporting"),
        F.sum("net_sales_reporting").cast(MONEY).alias("net_sales_reporting"),
    )
    return grouped.where((F.col("orders") > 0) | (F.col("returns_reporting") != 0))
