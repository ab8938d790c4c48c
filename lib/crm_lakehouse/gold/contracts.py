"""The gold data contract: the analyst-facing tables, their grain, keys and physical layout.

Table and column names here are a contract with analysts (docs/analysts.md): change them only
on purpose. Money columns ending in ``_reporting`` are in the reporting currency
(``reporting_currency`` in conf/base.yaml, USD by default); ``net_amount`` is in the order's own. Layout follows the two access paths analysts use: point lookups by ``customer_id``
(``customer_360``, ``churn_scores``: liquid clustering on it) and scans by date and region
(``fact_sales``, ``sales_daily``: liquid clustering on date, region). Deletion vectors are on, so
a MERGE that changes a few rows writes those rows, not every file they sit in.
"""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql.types import (
    ArrayType, DateType, DecimalType, DoubleType, IntegerType, LongType, MapType, StringType, StructType, TimestampType,
)

from crm_lakehouse.batches import Layer
from crm_lakehouse.config import Settings
from crm_lakehouse.tables import TableContract, ensure_contract, field, required

LAYER = "gold"
MONEY = DecimalType(18, 2)
# The customer_360 member that sales without a known customer (guest checkouts, references to
# customers no master delivered) belong to, so every fact_sales row names a customer_360 row.
UNKNOWN_CUSTOMER_ID = "unknown"
CUSTOMER_STATUSES = ("active", "deleted", "unknown")
DELETION_VECTORS = {"delta.enableDeletionVectors": "true"}

CUSTOMER_360 = TableContract(
    name="customer_360",
    subject_match=("customer_id",),
    grain="one row per golden customer_id: active (a live source record), deleted in every source "
          "(kept without PII so their sales keep a customer), and the 'unknown' member of sales "
          "without a known customer",
    key=("customer_id",),
    schema=StructType([
        required("customer_id"), required("customer_status"), field("deleted_at", TimestampType()),
        field("full_name", StringType()), field("country", StringType()), required("region"),
        required("home_currency"), required("source_systems", ArrayType(StringType())),
        required("channels", ArrayType(StringType())), field("first_seen_at", TimestampType()),
        field("first_order_date", DateType()), field("last_order_date", DateType()),
        required("orders_count", LongType()), required("gross_sales_reporting", MONEY),
        required("returns_reporting", MONEY), required("lifetime_value_reporting", MONEY),
        field("avg_order_value_reporting", MONEY),
        required("recency_score", IntegerType()), required("frequency_score", IntegerType()),
        required("monetary_score", IntegerType()), required("rfm_segment"),
        required("interactions_90d", LongType()), field("avg_satisfaction_90d", DoubleType()),
        field("attributes", MapType(StringType(), StringType())),
        field("churn_probability", DoubleType()), field("churn_risk_band", StringType()),
        field("churn_model_version", StringType()), required("_batch_id", LongType()),
    ]),
    constraints={"scores_1_to_5": "recency_score BETWEEN 0 AND 5 AND frequency_score BETWEEN 0 AND 5 "
                                  "AND monetary_score BETWEEN 0 AND 5",
                 "churn_probability_range": "churn_probability IS NULL OR churn_probability BETWEEN 0 AND 1",
                 "known_customer_status": "customer_status IN ('active', 'deleted', 'unknown')",
                 "net_is_gross_less_returns": "lifetime_value_reporting = gross_sales_reporting - returns_reporting"},
    cluster_by=("customer_id",),
    properties=DELETION_VECTORS,
)

FACT_SALES = TableContract(
    name="fact_sales",
    subject_match=("customer_id",),
    grain="one row per order line (sales, returns and cancellation lines, guest lines under the "
          "'unknown' customer)",
    key=("source", "order_id", "line_number"),
    schema=StructType([
        required("source"), required("order_id"), required("line_number", IntegerType()), required("customer_id"),
        required("product_id"), field("product_name", StringType()), field("category", StringType()),
        required("region"), field("country", StringType()), required("channel"), required("ordered_at", TimestampType()),
        required("order_date_utc", DateType()), required("order_local_date", DateType()), required("status"),
        required("quantity", IntegerType()), required("currency"), required("net_amount", MONEY),
        field("net_amount_reporting", MONEY), required("gross_sales_reporting", MONEY),
        required("returns_reporting", MONEY), required("net_sales_reporting", MONEY), required("_batch_id", LongType()),
    ]),
    constraints={"nonzero_quantity": "quantity <> 0",
                 "net_is_gross_less_returns": "net_sales_reporting = gross_sales_reporting - returns_reporting"},
    cluster_by=("order_local_date", "region"),
    properties=DELETION_VECTORS,
)

SALES_DAILY = TableContract(
    name="sales_daily",
    subject_match=(),
    grain="one row per (local order date, region, country, channel, product category) with sales or returns",
    key=("sales_date", "region", "country", "channel", "category"),
    schema=StructType([
        required("sales_date", DateType()), required("region"), required("country"), required("channel"),
        required("category"), required("orders", LongType()), required("customers", LongType()),
        required("units", LongType()), required("gross_sales_reporting", MONEY), required("returns_reporting", MONEY),
        required("net_sales_reporting", MONEY), required("_batch_id", LongType()),
    ]),
    constraints={"has_sales_or_returns": "orders > 0 OR returns_reporting <> 0",
                 "net_is_gross_less_returns": "net_sales_reporting = gross_sales_reporting - returns_reporting"},
    cluster_by=("sales_date", "region"),
    properties=DELETION_VECTORS,
)

RUN_LOG = TableContract(
    name="run_log",
    subject_match=(),
    grain="one row per gold batch: the silver versions it consumed and what it changed",
    key=("batch_id",),
    schema=StructType([
        required("batch_id", LongType()), required("as_of_date", DateType()),
        required("silver_versions", MapType(StringType(), ArrayType(LongType()))),
        required("affected_customers", LongType()), required("affected_lines", LongType()),
        required("affected_groups", LongType()), required("finished_at", TimestampType()),
    ]),
)

CHURN_SCORES = TableContract(
    name="churn_scores",
    subject_match=("customer_id",),
    grain="one row per golden customer_id in customer_360: the champion model's latest score",
    key=("customer_id",),
    schema=StructType([
        required("customer_id"), required("churn_probability", DoubleType()), required("churn_risk_band"),
        required("model_name"), required("model_version"), required("features_as_of_date", DateType()),
        required("scored_at", TimestampType()),
    ]),
    constraints={"probability_range": "churn_probability BETWEEN 0 AND 1",
                 "known_band": "churn_risk_band IN ('high', 'medium', 'low')"},
    cluster_by=("customer_id",),
    properties=DELETION_VECTORS,
)

# The marts the gold job maintains; churn_scores belongs to the score_churn job.
CONTRACTS: dict[str, TableContract] = {c.name: c for c in (CUSTOMER_360, FACT_SALES, SALES_DAILY, RUN_LOG)}
GOLD = Layer(LAYER, CONTRACTS)


def table_path(settings: Settings, contract: TableContract) -> str:
    return settings.table_path(LAYER, contract.name)


def ensure_gold_table(spark: SparkSession, settings: Settings, contract: TableContract) -> None:
    """Create or update one gold table; with ``gold.deletion_vectors: false`` it has none, so
    readers without deletion-vector support (delta-rs, Polars) can open it."""
    from dataclasses import replace

    from crm_lakehouse.delta_writes import drop_deletion_vectors, is_delta_table

    path = table_path(settings, contract)
    if settings.gold.deletion_vectors:
        ensure_contract(spark, path, contract)
        return
    if is_delta_table(spark, path):
        drop_deletion_vectors(spark, path)
    ensure_contract(spark, path, replace(contract, properties={
        k: v for k, v in contract.properties.items() if k not in DELETION_VECTORS}))


def ensure_gold_tables(spark: SparkSession, settings: Settings) -> None:
    for contract in CONTRACTS.values():
        ensure_gold_table(spark, settings, contract)
