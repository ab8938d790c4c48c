"""The canonical fields each source entity maps its own columns to.

A source YAML's ``mapping`` sends every one of its columns to one of these names. The kind says
how the value is written in a source file (dates and timestamps in the source's own format,
decimals with its decimal separator) and so how silver parses it back. Silver's typed tables are
built from these names; this module is the shared vocabulary, not the silver schema itself.
"""

from __future__ import annotations

from dataclasses import dataclass

STRING, DATE, TIMESTAMP, DECIMAL, INTEGER = "string", "date", "timestamp", "decimal", "integer"


@dataclass(frozen=True)
class EntitySpec:
    """Canonical fields of one entity, the ones every source must map, and its natural key."""

    name: str
    fields: dict[str, str]
    required: tuple[str, ...]
    key: tuple[str, ...]
    is_change_feed: bool = False


ENTITIES: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            name="customers",
            fields={
                "source_customer_id": STRING,
                "full_name": STRING,
                "email": STRING,
                "phone": STRING,
                "gender": STRING,
                "birth_date": DATE,
                "country": STRING,
                "city": STRING,
                "address": STRING,
                "signup_at": TIMESTAMP,
                "updated_at": TIMESTAMP,
                "operation": STRING,
                "sequence_number": INTEGER,
            },
            required=("source_customer_id", "operation", "sequence_number"),
            key=("source_customer_id",),
            is_change_feed=True,
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
                "discount": DECIMAL,
                "currency": STRING,
                "status": STRING,
                "store_id": STRING,
            },
            required=("order_id", "line_number", "source_customer_id", "ordered_at",
                      "product_id", "quantity", "unit_price", "currency"),
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
        ),
        EntitySpec(
            name="fx_rates",
            fields={
                "rate_date": DATE,
                "currency": STRING,
                "usd_per_unit": DECIMAL,
            },
            required=("rate_date", "currency", "usd_per_unit"),
            key=("rate_date", "currency"),
        ),
    )
}

CDC_OPERATIONS = ("insert", "update", "delete")
