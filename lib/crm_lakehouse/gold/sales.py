"""``gold.fact_sales`` (one row per order line) and ``gold.sales_daily`` (one row per local order
date x region x channel x product category).

``sales_daily`` counts completed orders only: returned and cancelled lines stay in
``fact_sales`` with their status, for analysts who need them, but are not revenue.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.gold.contracts import FACT_SALES, MONEY, SALES_DAILY
from crm_lakehouse.tables import conform

UNKNOWN_CATEGORY = "unknown"
GROUP = ["sales_date", "region", "channel", "category"]


def fact_sales(order_lines: DataFrame, products: DataFrame, batch_id: int) -> DataFrame:
    """silver.order_lines rows (with the product's name and category) -> fact_sales rows."""
    catalog = products.select("product_id", "product_name", "category")
    return conform(order_lines.drop("_batch_id").join(F.broadcast(catalog), "product_id", "left").select(
        "*", F.to_date("ordered_at").alias("order_date_utc"),
        F.coalesce(F.col("category"), F.lit(UNKNOWN_CATEGORY)).alias("_category"), F.lit(batch_id).alias("_batch_id"),
    ).drop("category").withColumnRenamed("_category", "category"), FACT_SALES)


def sales_groups(facts: DataFrame) -> DataFrame:
    """The (date, region, channel, category) groups the given fact rows fall in."""
    return facts.select(F.col("order_local_date").alias("sales_date"), "region", "channel", "category").distinct()


def sales_daily(facts: DataFrame, batch_id: int) -> DataFrame:
    """sales_daily rows from every fact row of the groups to compute."""
    completed = facts.where(F.col("status") == "completed")
    return conform(completed.groupBy(F.col("order_local_date").alias("sales_date"), "region", "channel", "category").agg(
        F.countDistinct("source", "order_id").alias("orders"), F.countDistinct("customer_id").alias("customers"),
        F.sum("quantity").alias("units"), F.sum("net_amount_usd").cast(MONEY).alias("revenue_usd"),
    ).withColumn("_batch_id", F.lit(batch_id)), SALES_DAILY)
