"""The canonical fields each source entity maps its own columns to.

A source YAML's ``mapping`` gives every canonical field it has a value for: from one of its
columns, a constant, a Spark SQL expression over its columns, or a value map. The kind says how
the value is written in a source file (dates and timestamps in the source's own format, decimals
with its decimal separator) and so how silver parses it back. Silver's typed tables are built
from these names; this module is the shared vocabulary, not the silver schema itself.
"""

from __future__ import annotations

from dataclasses import dataclass

STRING, DATE, TIMESTAMP, DECIMAL, INTEGER, BOOLEAN = "string", "date", "timestamp", "decimal", "integer", "boolean"
KINDS = (STRING, DATE, TIMESTAMP, DECIMAL, INTEGER, BOOLEAN)


@dataclass(frozen=True)
class EntitySpec:
    """Canonical fields of one entity, the ones every source must map, and its natural key."""

    name: str
    fields: dict[str, str]
    required: tuple[str, ...]
    key: tuple[str, ...]
    # Modes a source of this entity may declare (the first is the default when it declares none);
    # empty: the entity's records are events, each one new.
    modes: tuple[str, ...] = ()


# A customer record's profile, as a customer master delivers it and as an order line may carry
# it inline (prefixed ``customer_``) when a transaction log is the only source of its customers.
CUSTOMER_PROFILE = {
    "full_name": STRING, "email": STRING, "phone": STRING, "gender": STRING, "birth_date": DATE,
    "country": STRING, "city": STRING, "address": STRING,
}
INLINE_CUSTOMER_PREFIX = "customer_"
INLINE_CUSTOMER_FIELDS = {INLINE_CUSTOMER_PREFIX + f: f for f in CUSTOMER_PROFILE}
CDC, SNAPSHOT, INCREMENTAL = "cdc", "snapshot", "incremental"
# Canonical order statuses. Revenue counts completed sales; a returned sale and a reversal line
# (negative quantity: a credit note, a cancellation invoice) count as returns; cancelled orders
# that were never fulfilled and pending ones are not sales.
ORDER_STATUSES = ("completed", "returned", "cancelled", "pending")

ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            name="customers",
            fields={
                "source_customer_id": STRING, **CUSTOMER_PROFILE,
                "signup_at": TIMESTAMP, "updated_at": TIMESTAMP, "operation": STRING, "sequence_number": INTEGER,
            },
            required=("source_customer_id",),
            key=("source_customer_id",),
            modes=(CDC, SNAPSHOT, INCREMENTAL),
        ),
        EntitySpec(
            name="orders",
            fields={
                "order_id": STRING,
                "line_number": INTEGER,
                "source_customer_id": STRING,
                "ordered_at": TIMESTAMP,
                "product_id": STRING,
                "quantity": INTEGER,
                "unit_price": DECIMAL,
                "line_total": DECIMAL,
                "discount": DECIMAL,
                "currency": STRING,
                "status": STRING,
                "store_id": STRING,
                # The sale's own country (ship-to or invoice country), when the source has one.
                "country": STRING,
                **{INLINE_CUSTOMER_PREFIX + f: kind for f, kind in CUSTOMER_PROFILE.items()},
            },
            required=("order_id", "line_number", "ordered_at", "product_id", "quantity"),
            key=("order_id", "line_number"),
        ),
        EntitySpec(
            name="interactions",
            fields={
                "interaction_id": STRING,
                "customer_system": STRING,
                "source_customer_id": STRING,
                "interaction_type": STRING,
                "interaction_channel": STRING,
                "occurred_at": TIMESTAMP,
                "satisfaction_score": INTEGER,
                "subject": STRING,
                "campaign_id": STRING,
            },
            required=("interaction_id", "customer_system", "source_customer_id",
                      "interaction_type", "occurred_at"),
            key=("interaction_id",),
        ),
        EntitySpec(
            name="products",
            fields={
                "product_id": STRING,
                "product_name": STRING,
                "category": STRING,
                "brand": STRING,
                "list_price_usd": DECIMAL,
                "updated_at": TIMESTAMP,
            },
            required=("product_id", "product_name", "category"),
            key=("product_id",),
            modes=(INCREMENTAL, SNAPSHOT),
        ),
        EntitySpec(
            name="fx_rates",
            fields={
                "rate_date": DATE,
                "currency": STRING,
                # The value of one unit of ``currency`` in the reporting currency.
                "rate": DECIMAL,
            },
            required=("rate_date", "currency", "rate"),
            key=("rate_date", "currency"),
        ),
    )
}

CDC_OPERATIONS = ("insert", "update", "delete")
# Fields a customers change feed must map besides the entity's own required ones.
CDC_REQUIRED = ("operation", "sequence_number")
