"""What gold shows at a glance: active customers per RFM segment, and sales by region x channel."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.config import Settings
from crm_lakehouse.gold.contracts import CUSTOMER_360, SALES_DAILY, table_path


def segments(spark: SparkSession, settings: Settings) -> list[dict]:
    rows = (spark.read.format("delta").load(table_path(settings, CUSTOMER_360))
            .where(F.col("customer_status") == "active").groupBy("rfm_segment")
            .agg(F.count(F.lit(1)).alias("customers"), F.sum("lifetime_value_reporting").alias("lifetime_value_reporting"))
            .orderBy(F.desc("lifetime_value_reporting")).collect())
    return [{"segment": r["rfm_segment"], "customers": r["customers"], "lifetime_value_reporting": r["lifetime_value_reporting"]}
            for r in rows]


def sales_by_region_channel(spark: SparkSession, settings: Settings) -> list[dict]:
    rows = (spark.read.format("delta").load(table_path(settings, SALES_DAILY)).groupBy("region", "channel")
            .agg(F.sum("orders").alias("orders"), F.sum("units").alias("units"),
                 *[F.sum(c).alias(c) for c in ("gross_sales_reporting", "returns_reporting", "net_sales_reporting")])
            .orderBy("region", "channel").collect())
    return [r.asDict() for r in rows]
