"""The steps of one silver batch, in dependency order. Each declares what it reads — the staged
rows of an entity, or what an earlier step changed — and runs only when one of those changed
in the batch; each adds its triaged rows (for reconciliation and quarantine) and its MERGE
sources to the batch, which :mod:`crm_lakehouse.silver.build` then writes.

- reference data (FX rates, products): order lines need this batch's rates;
- customers (customer records, and the customers that order lines carry): their history, the
  identity graph and golden ids;
- order lines and orders: new lines, stored lines a late FX rate restates, lines whose customer
  got a new golden id;
- interactions: new ones, and stored ones whose customer got a new golden id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.batches import BatchPlan, Kept, Step, run_steps
from crm_lakehouse.config import Settings
from crm_lakehouse.silver import customers as cust
from crm_lakehouse.silver import matching
from crm_lakehouse.silver.contracts import (
    CUSTOMER_ID_REDIRECTS, CUSTOMER_IDENTITY_MAP, CUSTOMERS, CUSTOMERS_HISTORY, FX_RATES, IDENTITY_DECISIONS,
    IDENTITY_LINKS, IDENTITY_MODEL, IDENTITY_REVIEW, INTERACTIONS, LAYER, ORDER_LINES, ORDERS, PRODUCTS, TableContract,
    conform,
)
from crm_lakehouse.silver.customer_batch import customer_batch, inline_customer_rows
from crm_lakehouse.silver.interactions import INTERACTION_RULES, interactions
from crm_lakehouse.silver.orders import (
    ORDER_LINE_RULES, order_lines, orders, restate_provisional_amounts, with_customer_id, with_reporting_amounts,
)
from crm_lakehouse.silver.quality import ACCEPTED, triage, with_actions
from crm_lakehouse.silver.reference import FX_RATE_RULES, PRODUCT_RULES, fx_rates, products

log = logging.getLogger(__name__)

# What a step can read besides the staged entities (fx_rates, products, customers, orders,
# interactions): the customers that order lines of inline sources carry, and new golden ids.
INLINE_CUSTOMERS = "inline customers"
CUSTOMER_IDS = "customer ids"


@dataclass
class Entity:
    """One entity's batch after triage: rows with a fate, and how to name their key in quarantine."""

    table: TableContract
    triaged: DataFrame
    key: list[str]


@dataclass
class SilverBatch:
    """What the steps of one batch share: its inputs, and what the steps add to it."""

    plan: BatchPlan
    settings: Settings
    before: Mapping[str, DataFrame]        # every silver table as it was before the batch
    staged: dict[str, DataFrame]           # entity -> the batch's new bronze rows, staged
    keep: Kept
    changed: set[str] = field(default_factory=set)  # what the steps may read: staged entities, then products
    entities: list[Entity] = field(default_factory=list)
    merges: list[tuple[TableContract, DataFrame, dict]] = field(default_factory=list)
    duplicates: DataFrame | None = None    # (_source, count) accepted customer rows that changed nothing
    new_fx_rates: DataFrame | None = None
    identity_rows: DataFrame | None = None
    rekeyed: DataFrame | None = None       # (source, source_customer_id, customer_id) with a new golden id
    order_lines_triaged: DataFrame | None = None
    identity_figures: dict[str, float] = field(default_factory=dict)  # what the matching model scored

    @property
    def batch_id(self) -> int:
        return self.plan.batch_id

    def rules(self, rules: list) -> list:
        return with_actions(rules, self.settings.silver.rule_actions)

    def fx_rates_after(self) -> DataFrame:
        before = self.before[FX_RATES.name]
        return before if self.new_fx_rates is None else overlay(before, self.new_fx_rates, FX_RATES.key)

    def identity_after(self) -> DataFrame:
        before = self.before[CUSTOMER_IDENTITY_MAP.name]
        return before if self.identity_rows is None else overlay(before, self.identity_rows, CUSTOMER_IDENTITY_MAP.key)


def run_silver_steps(batch: SilverBatch) -> None:
    """Every step whose inputs changed in the batch, in order."""
    batch.changed |= set(batch.staged)
    if inline_sources(batch.settings, batch.plan) and "orders" in batch.staged:
        batch.changed.add(INLINE_CUSTOMERS)
    run_steps(STEPS, batch, batch.changed, where=f"silver batch {batch.batch_id}")


def _reference_data(b: SilverBatch) -> None:
    if "fx_rates" in b.staged:
        fx = b.keep(triage(b.staged["fx_rates"], b.rules(FX_RATE_RULES), table="silver.fx_rates",
                           key=["rate_date", "currency"], newest_first=[F.col("_ingested_at").desc()]),
                    "fx rates triage")
        b.entities.append(Entity(FX_RATES, fx, ["rate_date", "currency"]))
        b.new_fx_rates = fx_rates(fx.where(F.col("fate") == ACCEPTED), b.batch_id)
        b.merges.append((FX_RATES, b.new_fx_rates, {}))
    if "products" in b.staged:
        # Newest export first: a snapshot's export time, else the record's own update time.
        prod = b.keep(triage(b.staged["products"], b.rules(PRODUCT_RULES), table="silver.products",
                             key=["product_id"], newest_first=[F.col("_exported_at").desc_nulls_last(),
                                                               F.col("updated_at").desc_nulls_last(),
                                                               F.col("_ingested_at").desc()]), "products triage")
        b.entities.append(Entity(PRODUCTS, prod, ["product_id"]))
        b.merges.append((PRODUCTS, products(prod.where(F.col("fate") == ACCEPTED), b.batch_id),
                         {"update_when": "(t.updated_at IS NULL OR s.updated_at >= t.updated_at) AND NOT ("
                                         + " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in PRODUCTS.columns
                                                        if c not in ("_batch_id",)) + ")"}))


def _customers(b: SilverBatch) -> None:
    settings = b.settings
    inline = None
    if INLINE_CUSTOMERS in b.changed:
        inline = b.staged["orders"].where(F.col("_source").isin(inline_sources(settings, b.plan)))
    identity_settings = settings.silver.identity
    links_before = b.before[IDENTITY_LINKS.name]
    model_links = None
    if identity_settings.probabilistic.enabled:
        spark = links_before.sparkSession
        # As it is now, not as of the batch's start: a version this batch wrote before a crash is reused.
        model_table = spark.read.format("delta").load(settings.table_path(LAYER, IDENTITY_MODEL.name))

        def model_links(profiles_before: DataFrame, profiles_after: DataFrame, touched: DataFrame):
            return matching.match(
                spark, identity_settings.probabilistic, profiles_before=profiles_before, profiles_after=profiles_after,
                touched=touched, links_before=links_before, review_before=b.before[IDENTITY_REVIEW.name],
                decisions=b.before[IDENTITY_DECISIONS.name], model_table=model_table,
                blocked_emails=identity_settings.blocked_emails, blocked_phones=identity_settings.blocked_phones,
                cap=identity_settings.max_records_per_identifier, batch_id=b.batch_id)

    step = customer_batch(
        b.staged.get("customers"), inline_customer_rows(inline) if inline is not None else None,
        sources={s.name: s for s in settings.sources}, in_batch=set(b.plan.inputs),
        rules=b.rules(cust.CUSTOMER_RULES),
        history_before=b.before[CUSTOMERS_HISTORY.name], identity_before=b.before[CUSTOMER_IDENTITY_MAP.name],
        redirects_before=b.before[CUSTOMER_ID_REDIRECTS.name], identity_settings=settings.silver.identity,
        currency_of_region={r.code: r.currency for r in settings.regions.values()},
        shared_ids=shared_id_groups(settings.sources), batch_id=b.batch_id, keep=b.keep, model_links=model_links,
        links_before=links_before)
    if step.triaged is not None:
        b.entities.append(Entity(CUSTOMERS_HISTORY, step.triaged, ["source_customer_id", "sequence_number"]))
    b.duplicates = step.duplicates
    changes = step.changes
    b.identity_rows = b.keep(changes.identity_map, "identity map rows")
    b.rekeyed = b.keep(changes.rekeyed, "re-keyed customers")
    scored = changes.model_links
    if scored is not None:
        b.identity_figures = {"rescored_records": scored.rescored.count(), "pairs_scored": scored.pairs_scored,
                              **{f"{step}_s": seconds for step, seconds in scored.seconds.items()}}
        log.info("silver batch %d: the matching model scored %d pairs for %d records in %.1fs", b.batch_id,
                 scored.pairs_scored, b.identity_figures["rescored_records"], scored.seconds["scoring"])
        if scored.model_row is not None:
            # First, so that a rerun after a crash scores with the model the other tables were made with.
            b.merges.append((IDENTITY_MODEL, scored.model_row, {}))
        b.merges.append((IDENTITY_REVIEW, scored.review, {"delete_when": "s._delete", "insert_when": "NOT s._delete"}))
    b.merges += [
        (IDENTITY_LINKS, changes.links, {"delete_when": "s._delete", "insert_when": "NOT s._delete"}),
        (CUSTOMERS_HISTORY, changes.history, {}),
        (CUSTOMER_IDENTITY_MAP, b.identity_rows, {"source_is_materialized": True}),
        (CUSTOMER_ID_REDIRECTS, changes.redirects, {"delete_when": "s._delete", "insert_when": "NOT s._delete"}),
        (CUSTOMERS, changes.customers, {"delete_when": "s._delete", "insert_when": "NOT s._delete"}),
    ]
    b.changed.add(CUSTOMER_IDS)


def _order_lines(b: SilverBatch) -> None:
    reporting = b.settings.reporting_currency
    new_lines = None
    if "orders" in b.staged:
        lines_in = with_customer_id(with_reporting_amounts(b.staged["orders"], b.fx_rates_after(), reporting),
                                    b.identity_after())
        b.order_lines_triaged = b.keep(
            triage(lines_in, b.rules(ORDER_LINE_RULES), table="silver.order_lines",
                   key=["_source", "order_id", "line_number"], newest_first=[F.col("_ingested_at").desc()]),
            "order lines triage")
        b.entities.append(Entity(ORDER_LINES, b.order_lines_triaged, ["order_id", "line_number"]))
        new_lines = order_lines(b.order_lines_triaged.where(F.col("fate") == ACCEPTED), b.batch_id)
    # Stored lines change too: a late FX rate restates their amount, a merge re-keys them.
    stored_lines, restated = b.before[ORDER_LINES.name], None
    if b.new_fx_rates is not None:
        restated = b.keep(restate_provisional_amounts(stored_lines, b.fx_rates_after(), reporting, b.batch_id),
                          "restated amounts")
        stored_lines = overlay(stored_lines, restated, ORDER_LINES.key)
    line_rows = with_rekeyed(new_lines, stored_lines, b.rekeyed, ORDER_LINES, b.batch_id)
    if restated is not None:
        line_rows = restated if line_rows is None else line_rows.unionByName(
            restated.join(line_rows.select(*ORDER_LINES.key), list(ORDER_LINES.key), "left_anti"))
    if line_rows is None:
        return
    line_rows = b.keep(line_rows, "order line rows")
    b.merges.append((ORDER_LINES, line_rows, {"source_is_materialized": True}))
    touched_orders = line_rows.select("source", "order_id").distinct()
    lines_after = overlay(b.before[ORDER_LINES.name].join(touched_orders, ["source", "order_id"], "left_semi"),
                          line_rows, ORDER_LINES.key)
    b.merges.append((ORDERS, orders(lines_after, b.batch_id), {}))


def _interactions(b: SilverBatch) -> None:
    new_contacts = None
    if "interactions" in b.staged:
        contacts_in = with_customer_id(b.staged["interactions"].withColumn("customer_source", F.col("customer_system")),
                                       b.identity_after())
        contacts = b.keep(triage(contacts_in, b.rules(INTERACTION_RULES), table="silver.interactions",
                                 key=["interaction_id"], newest_first=[F.col("_ingested_at").desc()]),
                          "interactions triage")
        b.entities.append(Entity(INTERACTIONS, contacts, ["interaction_id"]))
        new_contacts = interactions(contacts.where(F.col("fate") == ACCEPTED), b.batch_id)
    contact_rows = with_rekeyed(new_contacts, b.before[INTERACTIONS.name], b.rekeyed, INTERACTIONS, b.batch_id)
    if contact_rows is not None:
        b.merges.append((INTERACTIONS, contact_rows, {}))


STEPS = (
    Step("reference data", frozenset({"fx_rates", "products"}), _reference_data),
    Step("customers", frozenset({"customers", INLINE_CUSTOMERS}), _customers),
    Step("order lines", frozenset({"orders", "fx_rates", CUSTOMER_IDS}), _order_lines),
    Step("interactions", frozenset({"interactions", CUSTOMER_IDS}), _interactions),
)


def shared_id_groups(sources) -> dict[str, str]:
    """Source -> the name of its group of sources that share customer numbers (connected through
    ``shares_ids_with``, declared on either side)."""
    group = {s.name: s.name for s in sources if s.shares_ids_with}
    for s in sources:
        for other in s.shares_ids_with:
            group.setdefault(other, other)

    def root(name: str) -> str:
        while group[name] != name:
            name = group[name]
        return name

    for s in sources:
        for other in s.shares_ids_with:
            a, b = sorted((root(s.name), root(other)))
            group[b] = a
    return {name: root(name) for name in group}


def inline_sources(settings: Settings, plan: BatchPlan) -> list[str]:
    """The batch's order sources whose lines carry their customer."""
    return sorted(s.name for s in settings.sources if s.inline_customers and s.name in plan.inputs)


def overlay(before: DataFrame, changes: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """The table after upserting ``changes`` (same columns as ``before``) on ``key``."""
    return before.join(changes.select(*key), list(key), "left_anti").unionByName(changes.select(*before.columns))


def with_rekeyed(new_rows: DataFrame | None, before: DataFrame, rekeyed: DataFrame | None, contract: TableContract,
                 batch: int) -> DataFrame | None:
    """New rows plus stored rows whose customer record got a new golden id in this batch."""
    if rekeyed is None:
        return new_rows
    moved = before.drop("customer_id").join(
        rekeyed.select(F.col("source").alias("customer_source"), "source_customer_id", "customer_id"),
        ["customer_source", "source_customer_id"]).withColumn("_batch_id", F.lit(batch))
    if new_rows is not None:
        moved = moved.join(new_rows.select(*contract.key), list(contract.key), "left_anti")
    moved = conform(moved, contract)
    return moved if new_rows is None else new_rows.unionByName(moved)
