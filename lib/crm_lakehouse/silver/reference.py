"""``silver.fx_rates`` and ``silver.products``: reference data, the latest value per key wins."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.silver.contracts import FX_RATES, PRODUCTS, conform
from crm_lakehouse.silver.quality import Expectation

PARSEABLE = Expectation("parseable_record", "NOT is_unparseable", "quarantine")

FX_RATE_RULES = [
    PARSEABLE,
    Expectation("has_rate_date", "rate_date IS NOT NULL", "quarantine", guards="silver.fx_rates' NOT NULL rate_date"),
    Expectation("currency_code", "currency RLIKE '^[A-Z]{3}$'", "quarantine",
                guards="silver.fx_rates' CHECK constraint currency_code"),
    Expectation("positive_rate", "rate > 0", "quarantine", guards="silver.fx_rates' CHECK constraint positive_rate"),
]

PRODUCT_RULES = [
    PARSEABLE,
    Expectation("has_product_id", "product_id IS NOT NULL", "quarantine", guards="silver.products' NOT NULL product_id"),
    Expectation("has_product_name", "product_name IS NOT NULL", "quarantine",
                guards="silver.products' NOT NULL product_name"),
    Expectation("has_category", "category IS NOT NULL", "quarantine", guards="silver.products' NOT NULL category"),
    Expectation("non_negative_price", "list_price_usd IS NULL OR list_price_usd >= 0", "quarantine",
                guards="silver.products' CHECK constraint non_negative_price"),
]


def fx_rates(accepted: DataFrame, batch_id: int) -> DataFrame:
    """One row per (date, currency) from the batch's accepted rate rows."""
    return conform(accepted.withColumn("source", F.col("_source")).withColumn("_batch_id", F.lit(batch_id)), FX_RATES)


def products(accepted: DataFrame, batch_id: int) -> DataFrame:
    """One row per product from the batch's accepted catalog rows (the newest entry per product)."""
    return conform(accepted.withColumn("source", F.col("_source")).withColumn("_batch_id", F.lit(batch_id)), PRODUCTS)
