"""The silver data contract: every silver table's schema, grain, key and constraints, defined once.

Writers select exactly these columns (``conform``), so a transform that drops or renames a
column fails before it writes; Delta enforces the NOT NULL fields and CHECK constraints on every
commit. Change Data Feed is on for every table: gold reads what changed.
"""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql.types import (
    ArrayType, BooleanType, DateType, DecimalType, DoubleType, IntegerType, LongType, MapType, StringType, StructType, TimestampType,
)

from crm_lakehouse.batches import Layer
from crm_lakehouse.config import Settings
from crm_lakehouse.tables import DELETION_VECTORS, Mask, TableContract, conform, ensure_contract, ensure_each
from crm_lakehouse.tables import field as _f
from crm_lakehouse.tables import required as _required

__all__ = ["CONTRACTS", "LAYER", "SILVER", "TableContract", "conform", "ensure_silver_tables", "table_path"]

LAYER = "silver"
MONEY = DecimalType(18, 2)
RATE = DecimalType(18, 6)


_PROFILE = [
    _f("full_name", StringType()), _f("email", StringType()), _f("phone", StringType()), _f("gender", StringType()),
    _f("birth_date", DateType()), _f("country", StringType()), _f("city", StringType()), _f("address", StringType()),
]
# The profile's personal columns, as analysts may see them (a city only where at least
# sql.k_anonymity customers live; gender and country as they are).
PROFILE_PII = {
    "full_name": Mask("initial", "name_initial"), "email": Mask("email_domain", "email_masked"),
    "phone": Mask("last4", "phone_last4"), "birth_date": Mask("decade", "birth_decade"),
    "city": Mask("k_anonymous", "city"), "address": Mask("hidden"),
}
# Attributes a source declares beyond the canonical fields (contract type, a churn label…):
# name -> value as text in its declared type's canonical spelling.
ATTRIBUTES = _f("attributes", MapType(StringType(), StringType()))

CUSTOMERS_HISTORY = TableContract(
    name="customers_history",
    properties=DELETION_VECTORS,
    subject_match=("customer_id", "record"),
    grain="one row per applied CDC event of a source customer record (SCD type 2); a delete is a "
          "zero-length tombstone row that ends the version before it",
    key=("source", "source_customer_id", "sequence_number"),
    schema=StructType([
        _required("customer_id"), _required("source"), _required("source_customer_id"), _required("region"),
        _required("channel"), _required("operation"), _required("sequence_number", LongType()), *_PROFILE,
        _f("signup_at", TimestampType()), _f("updated_at", TimestampType()), ATTRIBUTES,
        _required("valid_from", TimestampType()), _f("valid_to", TimestampType()), _required("is_current", BooleanType()),
        _required("_batch_id", LongType()), _f("_source_file", StringType()),
    ]),
    constraints={
        "known_operation": "operation IN ('insert', 'update', 'delete')",
        "valid_interval": "valid_to IS NULL OR valid_to >= valid_from",
        "tombstone_not_current": "operation <> 'delete' OR NOT is_current",
    },
    pii=PROFILE_PII,
)

CUSTOMER_IDENTITY_MAP = TableContract(
    name="customer_identity_map",
    properties=DELETION_VECTORS,
    subject_match=("customer_id", "record"),
    grain="one row per source customer record ever seen, deleted ones included",
    key=("source", "source_customer_id"),
    schema=StructType([
        _required("source"), _required("source_customer_id"), _required("customer_id"), _required("region"),
        _required("channel"), _required("is_deleted", BooleanType()), _f("first_seen_at", TimestampType()),
        _f("deleted_at", TimestampType()), _required("_batch_id", LongType()),
    ]),
)

CUSTOMER_ID_REDIRECTS = TableContract(
    name="customer_id_redirects",
    properties=DELETION_VECTORS,
    subject_match=("customer_id", "retired_customer_id"),
    grain="one row per retired golden customer_id, pointing at the id that absorbed it",
    key=("retired_customer_id",),
    schema=StructType([
        _required("retired_customer_id"), _required("customer_id"), _required("_batch_id", LongType()),
    ]),
    constraints={"no_self_redirect": "retired_customer_id <> customer_id"},
)

_PAIR = [_required("source_l"), _required("source_customer_id_l"), _required("source_r"),
         _required("source_customer_id_r")]
_PAIR_KEY = ("source_l", "source_customer_id_l", "source_r", "source_customer_id_r")
# Why a model scored a pair as it did: each comparison's level and the weight it added.
_EXPLANATION = [
    _f("match_weight", DoubleType()), _f("match_probability", DoubleType()),
    _f("levels", MapType(StringType(), StringType())), _f("weights", MapType(StringType(), DoubleType())),
]
_ORDERED_PAIR = "source_l < source_r OR (source_l = source_r AND source_customer_id_l < source_customer_id_r)"

IDENTITY_LINKS = TableContract(
    name="identity_links",
    properties=DELETION_VECTORS,
    subject_match=("record_l", "record_r"),
    grain="one row per link of the identity graph: two source records and why they are one person -- a "
          "shared key (email, phone, name_birth_date, shared_id), the model's match weight with each "
          "comparison's level (model), or a data steward's confirmation (confirmed)",
    key=(*_PAIR_KEY, "linked_by"),
    schema=StructType([*_PAIR, _required("linked_by"), *_EXPLANATION, _required("_batch_id", LongType())]),
    constraints={"ordered_pair": _ORDERED_PAIR},
)

IDENTITY_REVIEW = TableContract(
    name="identity_review",
    properties=DELETION_VECTORS,
    subject_match=("record_l", "record_r"),
    grain="one row per pair of source records the model scored in the grey zone (review_from up to link_at) "
          "and no steward has decided: confirm or reject it in silver.identity_decisions",
    key=_PAIR_KEY,
    schema=StructType([*_PAIR, *_EXPLANATION, _required("_batch_id", LongType())]),
    constraints={"ordered_pair": _ORDERED_PAIR},
)

IDENTITY_DECISIONS = TableContract(
    name="identity_decisions",
    subject_match=("record_l", "record_r"),
    grain="one row per pair of source records a data steward decided (written by stewards, read by the "
          "next silver batch): confirm links them whatever the weight, reject keeps them apart",
    key=_PAIR_KEY,
    schema=StructType([*_PAIR, _required("decision"), _f("decided_by", StringType()),
                       _f("decided_at", TimestampType()), _f("note", StringType())]),
    constraints={"known_decision": "decision IN ('confirm', 'reject')"},
)

IDENTITY_MODEL = TableContract(
    name="identity_model",
    subject_match=(),
    grain="one row per version of the probabilistic matching model (its Splink settings with the learned m "
          "and u probabilities, and the term frequencies of values at least 3 training records share); the "
          "newest version scores",
    key=("version",),
    schema=StructType([
        _required("version", IntegerType()), _required("model"), _required("model_sha256"),
        _required("trained_on_records", LongType()), _f("model_file", StringType()),
        _required("created_at", TimestampType()), _required("_batch_id", LongType()),
    ]),
)

CUSTOMERS = TableContract(
    name="customers",
    properties=DELETION_VECTORS,
    subject_match=("customer_id",),
    grain="one row per golden customer with at least one live source record (current state)",
    key=("customer_id",),
    schema=StructType([
        _required("customer_id"), *_PROFILE, _required("region"), _required("home_currency"),
        _required("source_systems", ArrayType(StringType())), _required("channels", ArrayType(StringType())),
        _required("record_count", IntegerType()), _f("first_seen_at", TimestampType()), _f("updated_at", TimestampType()),
        ATTRIBUTES, _required("_batch_id", LongType()),
    ]),
    constraints={"has_records": "record_count > 0"},
    pii=PROFILE_PII,
)

ORDER_LINES = TableContract(
    name="order_lines",
    properties=DELETION_VECTORS,
    subject_match=("customer_id", "customer_record"),
    grain="one row per order line",
    key=("source", "order_id", "line_number"),
    schema=StructType([
        _required("source"), _required("order_id"), _required("line_number", IntegerType()), _f("customer_id", StringType()),
        _f("customer_source", StringType()), _f("source_customer_id", StringType()), _required("region"),
        _required("channel"), _f("country", StringType()),
        _required("ordered_at", TimestampType()), _required("order_local_date", DateType()), _required("product_id"),
        _required("quantity", IntegerType()), _required("unit_price", MONEY), _required("discount", MONEY),
        _required("net_amount", MONEY), _required("currency"), _f("fx_rate", RATE), _f("fx_rate_date", DateType()),
        _f("net_amount_reporting", MONEY), _required("status"), _f("store_id", StringType()),
        _required("_batch_id", LongType()), _f("_source_file", StringType()),
    ]),
    constraints={
        # A negative quantity is a return or cancellation line (a credit note), never a sale.
        "positive_quantity": "quantity > 0 OR (quantity < 0 AND status IN ('returned', 'cancelled'))",
        "known_status": "status IN ('completed', 'returned', 'cancelled', 'pending')",
        "non_negative_unit_price": "unit_price >= 0",
        "currency_code": "length(currency) = 3",
        "rate_not_after_order": "fx_rate_date IS NULL OR fx_rate_date <= order_local_date",
    },
)

ORDERS = TableContract(
    name="orders",
    properties=DELETION_VECTORS,
    subject_match=("customer_id", "customer_record"),
    grain="one row per order (its accepted lines summed)",
    key=("source", "order_id"),
    schema=StructType([
        _required("source"), _required("order_id"), _f("customer_id", StringType()), _f("customer_source", StringType()),
        _f("source_customer_id", StringType()), _required("region"), _required("channel"), _f("country", StringType()),
        _required("ordered_at", TimestampType()), _required("order_local_date", DateType()), _required("currency"),
        _f("status", StringType()), _f("store_id", StringType()), _required("line_count", IntegerType()),
        _required("units", LongType()), _required("net_amount", MONEY), _f("net_amount_reporting", MONEY),
        _required("_batch_id", LongType()),
    ]),
    constraints={"has_lines": "line_count > 0"},
)

INTERACTIONS = TableContract(
    name="interactions",
    properties=DELETION_VECTORS,
    subject_match=("customer_id", "customer_record"),
    grain="one row per interaction (ticket, call, e-mail, campaign response)",
    key=("interaction_id",),
    schema=StructType([
        _required("interaction_id"), _required("source"), _required("region"), _f("customer_id", StringType()),
        _required("customer_source"), _required("source_customer_id"), _required("interaction_type"),
        _f("interaction_channel", StringType()), _required("occurred_at", TimestampType()),
        _required("occurred_local_date", DateType()), _f("satisfaction_score", IntegerType()),
        _f("subject", StringType()), _f("campaign_id", StringType()),
        _required("_batch_id", LongType()), _f("_source_file", StringType()),
    ]),
    constraints={"satisfaction_range": "satisfaction_score IS NULL OR satisfaction_score BETWEEN 1 AND 5"},
)

PRODUCTS = TableContract(
    name="products",
    properties=DELETION_VECTORS,
    subject_match=(),
    grain="one row per product (latest catalog entry)",
    key=("product_id",),
    schema=StructType([
        _required("product_id"), _required("product_name"), _required("category"), _f("brand", StringType()),
        _f("list_price_usd", MONEY), _f("updated_at", TimestampType()), _required("source"),
        _required("_batch_id", LongType()),
    ]),
    constraints={"non_negative_price": "list_price_usd IS NULL OR list_price_usd >= 0"},
)

FX_RATES = TableContract(
    name="fx_rates",
    properties=DELETION_VECTORS,
    subject_match=(),
    grain="one row per (date, currency): the value of one unit in the reporting currency",
    key=("rate_date", "currency"),
    schema=StructType([
        _required("rate_date", DateType()), _required("currency"), _required("rate", RATE), _required("source"),
        _required("_batch_id", LongType()),
    ]),
    constraints={"positive_rate": "rate > 0", "currency_code": "length(currency) = 3"},
)

QUARANTINE = TableContract(
    name="quarantine",
    subject_match=("raw_record",),
    grain="one row per rejected source record, with every rule it broke",
    key=("batch_id", "source", "record_hash"),
    schema=StructType([
        _required("batch_id", LongType()), _required("target_table"), _required("source"), _f("source_file", StringType()),
        _f("record_key", StringType()), _required("broken_rules", ArrayType(StringType())),
        _required("raw_record"), _required("record_hash"), _required("quarantined_at", TimestampType()),
    ]),
    constraints={"names_a_rule": "size(broken_rules) > 0"},
)

RUN_LOG = TableContract(
    name="run_log",
    subject_match=(),
    grain="one row per (silver batch, source): what came in and where every row went",
    key=("batch_id", "source"),
    schema=StructType([
        _required("batch_id", LongType()), _required("target_table"), _required("source"),
        _required("bronze_from_version", LongType()), _required("bronze_to_version", LongType()),
        _required("rows_in", LongType()), _required("accepted", LongType()), _required("quarantined", LongType()),
        _required("duplicates_removed", LongType()), _required("warnings", MapType(StringType(), LongType())),
        _required("finished_at", TimestampType()),
    ]),
    constraints={"reconciles": "rows_in = accepted + quarantined + duplicates_removed"},
)

CONTRACTS: dict[str, TableContract] = {c.name: c for c in (
    CUSTOMERS, CUSTOMERS_HISTORY, CUSTOMER_IDENTITY_MAP, CUSTOMER_ID_REDIRECTS, ORDERS, ORDER_LINES, INTERACTIONS,
    PRODUCTS, FX_RATES, QUARANTINE, RUN_LOG, IDENTITY_LINKS, IDENTITY_REVIEW, IDENTITY_DECISIONS, IDENTITY_MODEL,
)}


SILVER = Layer(LAYER, CONTRACTS, reads_inserts_only=True)


def table_path(settings: Settings, contract: TableContract) -> str:
    return settings.table_path(LAYER, contract.name)


def ensure_silver_tables(spark: SparkSession, settings: Settings) -> None:
    """Create every silver table that does not exist yet, with its contract."""
    ensure_each(spark, lambda contract: ensure_contract(spark, table_path(settings, contract), contract), CONTRACTS.values())
