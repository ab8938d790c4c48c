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
from crm_lakehouse.silver.contracts import PROFILE_PII
from crm_lakehouse.tables import DELETION_VECTORS, TableContract, ensure_contract, ensure_each, field, required

LAYER = "gold"
MONEY = DecimalType(18, 2)
# The customer_360 member that sales without a known customer (guest checkouts, references to
# customers no master delivered) belong to, so every fact_sales row names a customer_360 row.
UNKNOWN_CUSTOMER_ID = "unknown"
CUSTOMER_STATUSES = ("active", "deleted", "unknown")

# Column meanings shared by the marts (docs/analysts.md says the same at length).
_MEASURES = {
    "gross_sales_reporting": "what was sold: completed lines and returned ones, reporting currency",
    "returns_reporting": "what came back (positive), reporting currency",
    "net_sales_reporting": "gross sales less returns (revenue), reporting currency",
    "region": "the region of the CRM system", "country": "ISO 3166 country code",
    "channel": "web, store, app, call center or partner",
}

# The contact and demographic columns customer_360 carries from silver.customers as they are,
# so the analysts' customer view reads one table (a lookup plans one Delta scan, not a join of
# two); the view masks them as silver's contract declares, in the order it showed them before.
PROFILE_FROM_SILVER = ("email", "phone", "birth_date", "gender", "city", "address")

CUSTOMER_360 = TableContract(
    name="customer_360",
    subject_match=("customer_id",),
    grain="one row per golden customer_id: active (a live source record), deleted in every source "
          "(kept without PII so their sales keep a customer), and the 'unknown' member of sales "
          "without a known customer",
    key=("customer_id",),
    schema=StructType([
        required("customer_id"), required("customer_status"), field("deleted_at", TimestampType()),
        field("full_name", StringType()), field("email", StringType()), field("phone", StringType()),
        field("birth_date", DateType()), field("gender", StringType()), field("city", StringType()),
        field("address", StringType()), field("country", StringType()), required("region"),
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
    comments={
        "customer_id": "golden customer id (stable; retired ids in silver.customer_id_redirects)",
        "customer_status": "active (a live source record), deleted (in every source) or unknown",
        "deleted_at": "when the last source record was deleted (UTC)",
        "full_name": "latest known name across the customer's records",
        "email": "latest known e-mail, lower-cased", "phone": "latest known phone in E.164 (+8613812345678)",
        "gender": "gender as the sources deliver it", "birth_date": "latest known birth date",
        "city": "latest known city", "address": "latest known street address",
        "country": "latest known ISO 3166 country code", "region": "region of the customer's records",
        "home_currency": "currency of the customer's country",
        "source_systems": "CRM systems the customer is in", "channels": "channels of those systems and of their orders",
        "first_seen_at": "earliest sign-up in any system, else the first export or order naming them (UTC)",
        "first_order_date": "local date of the first completed sale",
        "last_order_date": "local date of the last completed sale", "orders_count": "completed orders",
        "gross_sales_reporting": _MEASURES["gross_sales_reporting"], "returns_reporting": _MEASURES["returns_reporting"],
        "lifetime_value_reporting": "net sales over the customer's lifetime, reporting currency",
        "avg_order_value_reporting": "lifetime value / completed orders, reporting currency",
        "recency_score": "1-5 (0 without orders)", "frequency_score": "1-5 (0 without orders)",
        "monetary_score": "1-5 on net sales (0 without orders)",
        "rfm_segment": "champions, loyal, promising, new customers, needs attention, at risk, hibernating, lost, "
                       "prospect (no orders), deleted or unknown",
        "interactions_90d": "interactions in the 90 days up to the as-of date",
        "avg_satisfaction_90d": "mean satisfaction (1-5) of those interactions that were scored",
        "attributes": "what the sources declared beyond the canonical fields, as text",
        "churn_probability": "the champion churn model's latest score (active customers)",
        "churn_risk_band": "high, medium or low", "churn_model_version": "registered model version that scored",
    },
    pii={column: mask for column, mask in PROFILE_PII.items()
         if column == "full_name" or column in PROFILE_FROM_SILVER},
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
    comments={
        **_MEASURES,
        "customer_id": "golden customer id ('unknown' for guest lines)", "source": "the CRM system's order feed",
        "order_id": "order id in that system", "line_number": "line within the order",
        "product_id": "product id", "product_name": "product name from the catalog",
        "category": "product category ('unknown' without a catalog entry)",
        "country": "the line's ship-to or invoice country, else the customer's (ISO 3166)",
        "ordered_at": "when the order was placed (UTC)", "order_date_utc": "order date in UTC",
        "order_local_date": "order date in the customer's time zone", "status": "completed, cancelled, pending or returned",
        "quantity": "units (negative for a reversal line)", "currency": "the order's currency",
        "net_amount": "line amount in the order's currency", "net_amount_reporting": "line amount, reporting currency",
    },
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
    comments={
        **_MEASURES, "sales_date": "local order date", "category": "product category",
        "orders": "completed sales orders", "customers": "distinct known customers with a completed sale",
        "units": "units sold less units returned",
    },
)

# The dashboard's grain. Distinct orders and customers over a month do not add up from its days,
# so the month is kept apart instead of being summed from sales_daily at query time.
SALES_MONTHLY = TableContract(
    name="sales_monthly",
    subject_match=(),
    grain="one row per (month of the local order date, region, country, channel) with sales or returns",
    key=("month", "region", "country", "channel"),
    schema=StructType([
        required("month", DateType()), required("region"), required("country"), required("channel"),
        required("orders", LongType()), required("customers", LongType()), required("units", LongType()),
        required("gross_sales_reporting", MONEY), required("returns_reporting", MONEY),
        required("net_sales_reporting", MONEY), required("_batch_id", LongType()),
    ]),
    constraints=SALES_DAILY.constraints,
    cluster_by=("month", "region"),
    properties=DELETION_VECTORS,
    comments={
        **_MEASURES, "month": "first day of the month of the local order date",
        "country": "ISO 3166 country code ('ZZ' when unknown)", "orders": "completed sales orders",
        "customers": "distinct known customers with a completed sale", "units": "units sold less units returned",
    },
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
CONTRACTS: dict[str, TableContract] = {c.name: c for c in (CUSTOMER_360, FACT_SALES, SALES_DAILY, SALES_MONTHLY,
                                                                  RUN_LOG)}
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
    ensure_each(spark, lambda contract: ensure_gold_table(spark, settings, contract), CONTRACTS.values())
