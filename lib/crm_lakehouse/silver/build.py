"""The silver job: consume what bronze gained, in batches, into the silver tables.

Each batch is computed in full from its inputs (bronze change feed ranges, silver as it was
before the batch) before anything is written, so a ``fail`` rule or a reconciliation error stops
it with nothing written. The writes follow, one commit per table, each idempotent through
Delta's (app id, batch id) pair; the run-log rows go last and mark the batch done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.batches import BatchPlan, TablesAsOf, next_plan, read_appended
from crm_lakehouse.catalog import register_table
from crm_lakehouse.config import Settings, SourceConfig, join_path
from crm_lakehouse.delta_writes import WriteResult, append_once, upsert
from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.mapping import check_expressions
from crm_lakehouse.silver.rules import check_rule_actions
from crm_lakehouse.silver import customers as cust
from crm_lakehouse.silver.contracts import (
    CONTRACTS, CUSTOMER_ID_REDIRECTS, CUSTOMER_IDENTITY_MAP, CUSTOMERS, CUSTOMERS_HISTORY, FX_RATES, INTERACTIONS, LAYER,
    ORDER_LINES, ORDERS, PRODUCTS, QUARANTINE, RUN_LOG, TableContract, conform, ensure_silver_tables, table_path,
)
from crm_lakehouse.silver.interactions import INTERACTION_RULES, interactions
from crm_lakehouse.silver.customer_batch import customer_batch, inline_customer_rows
from crm_lakehouse.silver.orders import (
    ORDER_LINE_RULES, order_lines, orders, restate_provisional_amounts, with_customer_id, with_reporting_amounts,
)
from crm_lakehouse.silver.quality import ACCEPTED, DUPLICATE, QUARANTINED, triage, with_actions
from crm_lakehouse.silver.reference import FX_RATE_RULES, PRODUCT_RULES, fx_rates, products
from crm_lakehouse.silver.staging import stage

log = logging.getLogger(__name__)

APP_ID = "crm-lakehouse:silver"


# The table each entity's rows are accepted into (and reconciled against).
ENTITY_TABLE = {"fx_rates": FX_RATES, "products": PRODUCTS, "customers": CUSTOMERS_HISTORY, "orders": ORDER_LINES,
                "interactions": INTERACTIONS}


class ReconciliationError(LakehouseError):
    """Rows in != accepted + quarantined + duplicates for a source: a transform lost or made rows."""


@dataclass
class BatchResult:
    """What one silver batch did: per-source reconciliation and per-table write outcomes."""

    batch_id: int
    resumed: bool
    reconciliation: list[dict] = field(default_factory=list)
    # source -> {rule: rows quarantined in this batch}; a row breaking two rules counts under both.
    quarantined_by_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    # (source, currency, order lines) quarantined because no FX rate converts the currency.
    currencies_without_rate: list[tuple[str, str, int]] = field(default_factory=list)
    writes: dict[str, WriteResult] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _Entity:
    """One entity's batch after triage: rows with a fate, and how to name their key in quarantine."""

    table: TableContract
    triaged: DataFrame
    key: list[str]


def build_silver(spark: SparkSession, settings: Settings) -> list[BatchResult]:
    """Run every pending silver batch (an interrupted one first); [] when bronze has nothing new."""
    check_rule_actions(settings)
    check_expressions(spark, settings)  # a broken mapping expression stops here, before any row is read
    ensure_silver_tables(spark, settings)
    paths = {name: table_path(settings, contract) for name, contract in CONTRACTS.items()}
    results = []
    while True:
        finished = {row[0] for row in spark.read.format("delta").load(paths[RUN_LOG.name])
                    .select("batch_id").distinct().collect()}
        plan = next_plan(spark, join_path(settings.checkpoints, "silver", "batches"),
                         inputs={s.name: settings.table_path("bronze", s.name) for s in settings.sources},
                         outputs=paths, finished=finished)
        if plan is None:
            break
        results.append(_run_batch(spark, settings, plan))
    for name, path in paths.items():
        register_table(spark, LAYER, name, path)
    return results


def _run_batch(spark: SparkSession, settings: Settings, plan: BatchPlan) -> BatchResult:
    started = time.monotonic()
    batch = plan.batch_id
    before = TablesAsOf(spark, paths={name: table_path(settings, c) for name, c in CONTRACTS.items()},
                        versions=plan.outputs_before, schemas={name: c.schema for name, c in CONTRACTS.items()})
    overrides = settings.silver.rule_actions
    reporting = settings.reporting_currency
    persisted: list[DataFrame] = []

    def keep(df: DataFrame, what: str) -> DataFrame:
        # Materialized once and cut from its plan: each is read by several writes and counts,
        # and the short plan keeps every later step's analysis cheap. Most of a batch's compute
        # happens here, so the time of each is logged to show where a slow batch spends it.
        computing = time.monotonic()
        persisted.append(df.localCheckpoint(eager=True))
        log.info("silver batch %d: %s computed in %.1fs", batch, what, time.monotonic() - computing)
        return persisted[-1]

    staged = {entity: keep(rows, f"staged {entity}") for entity, rows in _staged_by_entity(spark, settings, plan).items()}
    entities: list[_Entity] = []
    merges: list[tuple[TableContract, DataFrame, dict]] = []
    duplicates = None

    # Reference data first: orders need this batch's FX rates.
    fx_after = before[FX_RATES.name]
    if "fx_rates" in staged:
        fx = keep(triage(staged["fx_rates"], with_actions(FX_RATE_RULES, overrides), table="silver.fx_rates",
                         key=["rate_date", "currency"], newest_first=[F.col("_ingested_at").desc()]), "fx rates triage")
        entities.append(_Entity(FX_RATES, fx, ["rate_date", "currency"]))
        new_fx = fx_rates(fx.where(F.col("fate") == ACCEPTED), batch)
        merges.append((FX_RATES, new_fx, {}))
        fx_after = _overlay(before[FX_RATES.name], new_fx, FX_RATES.key)
    if "products" in staged:
        # Newest export first: a snapshot's export time, else the record's own update time.
        prod = keep(triage(staged["products"], with_actions(PRODUCT_RULES, overrides), table="silver.products",
                           key=["product_id"], newest_first=[F.col("_exported_at").desc_nulls_last(),
                                                             F.col("updated_at").desc_nulls_last(),
                                                             F.col("_ingested_at").desc()]), "products triage")
        entities.append(_Entity(PRODUCTS, prod, ["product_id"]))
        merges.append((PRODUCTS, products(prod.where(F.col("fate") == ACCEPTED), batch),
                       {"update_when": "(t.updated_at IS NULL OR s.updated_at >= t.updated_at) AND NOT ("
                                       + " AND ".join(f"t.`{c}` <=> s.`{c}`" for c in PRODUCTS.columns
                                                      if c not in ("_batch_id",)) + ")"}))

    identity_after = before[CUSTOMER_IDENTITY_MAP.name]
    rekeyed = None
    inline = staged.get("orders")
    inline = inline.where(F.col("_source").isin(_inline_sources(settings, plan))) \
        if inline is not None and _inline_sources(settings, plan) else None
    if "customers" in staged or inline is not None:
        identity_settings = settings.silver.identity
        step = customer_batch(
            staged.get("customers"), inline_customer_rows(inline) if inline is not None else None,
            sources={s.name: s for s in settings.sources}, in_batch=set(plan.inputs),
            rules=with_actions(cust.CUSTOMER_RULES, overrides),
            history_before=before[CUSTOMERS_HISTORY.name], identity_before=before[CUSTOMER_IDENTITY_MAP.name],
            redirects_before=before[CUSTOMER_ID_REDIRECTS.name], identity_settings=identity_settings,
            currency_of_region={r.code: r.currency for r in settings.regions.values()},
            shared_ids=shared_id_groups(settings.sources), batch_id=batch, keep=keep)
        if step.triaged is not None:
            entities.append(_Entity(CUSTOMERS_HISTORY, step.triaged, ["source_customer_id", "sequence_number"]))
        duplicates = step.duplicates
        changes = step.changes
        persisted += changes.cached
        identity_rows = keep(changes.identity_map, "identity map rows")
        rekeyed = keep(changes.rekeyed, "re-keyed customers")
        merges += [
            (CUSTOMERS_HISTORY, changes.history, {}),
            (CUSTOMER_IDENTITY_MAP, identity_rows, {"source_is_materialized": True}),
            (CUSTOMER_ID_REDIRECTS, changes.redirects, {"delete_when": "s._delete", "insert_when": "NOT s._delete"}),
            (CUSTOMERS, changes.customers, {"delete_when": "s._delete", "insert_when": "NOT s._delete"}),
        ]
        identity_after = _overlay(before[CUSTOMER_IDENTITY_MAP.name], identity_rows, CUSTOMER_IDENTITY_MAP.key)

    if "orders" in staged:
        lines_in = with_customer_id(with_reporting_amounts(staged["orders"], fx_after, reporting), identity_after)
        lines = keep(triage(lines_in, with_actions(ORDER_LINE_RULES, overrides), table="silver.order_lines",
                            key=["_source", "order_id", "line_number"], newest_first=[F.col("_ingested_at").desc()]),
                     "order lines triage")
        entities.append(_Entity(ORDER_LINES, lines, ["order_id", "line_number"]))
        new_lines = order_lines(lines.where(F.col("fate") == ACCEPTED), batch)
    else:
        new_lines = None
    # Stored lines change too: a late FX rate restates their amount, a merge re-keys them.
    stored_lines, restated = before[ORDER_LINES.name], None
    if "fx_rates" in staged:
        restated = keep(restate_provisional_amounts(stored_lines, fx_after, reporting, batch), "restated amounts")
        stored_lines = _overlay(stored_lines, restated, ORDER_LINES.key)
    line_rows = _with_rekeyed(new_lines, stored_lines, rekeyed, ORDER_LINES, batch)
    if restated is not None:
        line_rows = restated if line_rows is None else line_rows.unionByName(
            restated.join(line_rows.select(*ORDER_LINES.key), list(ORDER_LINES.key), "left_anti"))
    if line_rows is not None:
        line_rows = keep(line_rows, "order line rows")
        merges.append((ORDER_LINES, line_rows, {"source_is_materialized": True}))
        touched_orders = line_rows.select("source", "order_id").distinct()
        lines_after = _overlay(before[ORDER_LINES.name].join(touched_orders, ["source", "order_id"], "left_semi"),
                               line_rows, ORDER_LINES.key)
        merges.append((ORDERS, orders(lines_after, batch), {}))

    if "interactions" in staged:
        contacts_in = with_customer_id(staged["interactions"].withColumn("customer_source", F.col("customer_system")),
                                       identity_after)
        contacts = keep(triage(contacts_in, with_actions(INTERACTION_RULES, overrides), table="silver.interactions",
                               key=["interaction_id"], newest_first=[F.col("_ingested_at").desc()]),
                        "interactions triage")
        entities.append(_Entity(INTERACTIONS, contacts, ["interaction_id"]))
        new_contacts = interactions(contacts.where(F.col("fate") == ACCEPTED), batch)
    else:
        new_contacts = None
    contact_rows = _with_rekeyed(new_contacts, before[INTERACTIONS.name], rekeyed, INTERACTIONS, batch)
    if contact_rows is not None:
        merges.append((INTERACTIONS, contact_rows, {}))

    reconciliation, quarantined_by_rule = _reconcile(spark, settings, plan, entities, duplicates, batch)
    result = BatchResult(batch_id=batch, resumed=plan.resumed, reconciliation=reconciliation,
                         quarantined_by_rule=quarantined_by_rule)
    if any("known_currency" in rules for rules in quarantined_by_rule.values()):
        # Name the currencies, so the line says what rate is missing (a small query, only then).
        missing = lines.where((F.col("fate") == QUARANTINED) & F.array_contains("broken_rules", "known_currency"))
        result.currencies_without_rate = sorted(
            (r["_source"], r["currency"] or "(none)", r["count"])
            for r in missing.groupBy("_source", "currency").count().collect())
    for contract, rows, conditions in merges:
        merging = time.monotonic()
        if not conditions.get("source_is_materialized"):
            # Delta copies a derived MERGE source before reading it twice anyway; materialized
            # here, the copy also tells for free that nothing changed, and the MERGE (a snapshot
            # load, a scan of the target and a commit) is not run at all.
            rows = keep(rows, f"{contract.name} changes")
            conditions = {**conditions, "source_is_materialized": True}
        if rows.isEmpty():
            log.info("silver batch %d: no change for %s, no MERGE", batch, contract.name)
            continue
        result.writes[contract.name] = upsert(spark, rows, table_path(settings, contract), list(contract.key),
                                              app_id=APP_ID, version=batch, **conditions)
        log.info("silver batch %d: MERGE into %s in %.1fs", batch, contract.name, time.monotonic() - merging)
    quarantine = _quarantine_rows(entities, batch)
    if quarantine is not None:
        result.writes[QUARANTINE.name] = append_once(spark, quarantine, table_path(settings, QUARANTINE), app_id=APP_ID,
                                                     version=batch)
    result.writes[RUN_LOG.name] = append_once(spark, spark.createDataFrame(reconciliation, RUN_LOG.schema),
                                              table_path(settings, RUN_LOG), app_id=APP_ID, version=batch)
    for df in persisted:
        df.unpersist()
    result.seconds = round(time.monotonic() - started, 2)
    return result


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


def _inline_sources(settings: Settings, plan: BatchPlan) -> list[str]:
    return sorted(s.name for s in settings.sources if s.inline_customers and s.name in plan.inputs)


def _staged_by_entity(spark: SparkSession, settings: Settings, plan: BatchPlan) -> dict[str, DataFrame]:
    """Every new bronze row of the batch in its entity's canonical columns, sources unioned."""
    by_entity: dict[str, DataFrame] = {}
    for source in settings.sources:
        if source.name not in plan.inputs:
            continue
        staged = stage(_new_bronze(spark, settings, source, plan), source) \
            .withColumnRenamed("_batch_id", "_bronze_batch_id")
        if source.entity == "orders":
            staged = staged.withColumn("customer_source", F.lit(source.customer_source).cast("string"))
        if source.entity == "customers":
            staged = staged.withColumn("derives_changes", F.lit(source.mode != "cdc"))
        previous = by_entity.get(source.entity)
        by_entity[source.entity] = staged if previous is None else previous.unionByName(staged)
    return by_entity


def _new_bronze(spark: SparkSession, settings: Settings, source: SourceConfig, plan: BatchPlan) -> DataFrame:
    return read_appended(spark, settings.table_path("bronze", source.name), plan.inputs[source.name])


def _overlay(before: DataFrame, changes: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """The table after upserting ``changes`` (same columns as ``before``) on ``key``."""
    return before.join(changes.select(*key), list(key), "left_anti").unionByName(changes.select(*before.columns))


def _with_rekeyed(new_rows: DataFrame | None, before: DataFrame, rekeyed: DataFrame | None, contract: TableContract,
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


def _reconcile(spark: SparkSession, settings: Settings, plan: BatchPlan, entities: list[_Entity],
               duplicates: DataFrame | None, batch: int) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """One run-log row per source, and the quarantined rows per source and rule; raises when a
    source's bronze rows do not add up to their fates.

    Rows in are counted on bronze itself, apart from the transforms, so a join that loses or
    multiplies rows shows up here instead of in the tables. ``duplicates`` counts accepted rows
    that changed nothing (replayed events, records repeated unchanged in a snapshot).
    """
    replayed = {row["_source"]: row["count"] for row in duplicates.collect()} if duplicates is not None else {}
    quarantined_by_rule: dict[str, dict[str, int]] = {}
    bronze = None
    for name in plan.inputs:
        rows_of = _new_bronze(spark, settings, settings.source(name), plan).select(F.lit(name).alias("_source"))
        bronze = rows_of if bronze is None else bronze.unionByName(rows_of)
    rows_in = {r["_source"]: r["count"] for r in bronze.groupBy("_source").count().collect()} if bronze is not None else {}
    rows = []
    for entity in entities:
        fates: dict[str, dict[str, int]] = {}
        warnings: dict[str, dict[str, int]] = {}
        # One small job per entity: rows per (source, fate, set of broken rules).
        for r in entity.triaged.groupBy("_source", "fate", "broken_rules").count().collect():
            counts = fates.setdefault(r["_source"], {ACCEPTED: 0, QUARANTINED: 0, DUPLICATE: 0})
            counts[r["fate"]] += r["count"]
            tally = warnings if r["fate"] == ACCEPTED else quarantined_by_rule if r["fate"] == QUARANTINED else {}
            for rule in r["broken_rules"] if r["fate"] != DUPLICATE else []:
                tally.setdefault(r["_source"], {}).setdefault(rule, 0)
                tally[r["_source"]][rule] += r["count"]
        for source in sorted(s.name for s in settings.sources
                             if s.name in plan.inputs and ENTITY_TABLE[s.entity] is entity.table):
            counts = fates.get(source) or {ACCEPTED: 0, QUARANTINED: 0, DUPLICATE: 0}
            again = replayed.get(source, 0)
            row = {
                "batch_id": batch, "target_table": f"silver.{entity.table.name}", "source": source,
                "bronze_from_version": plan.inputs[source][0], "bronze_to_version": plan.inputs[source][1],
                "rows_in": rows_in.get(source, 0), "accepted": counts[ACCEPTED] - again,
                "quarantined": counts[QUARANTINED], "duplicates_removed": counts[DUPLICATE] + again,
                "warnings": dict(sorted(warnings.get(source, {}).items())),
            }
            if row["rows_in"] != row["accepted"] + row["quarantined"] + row["duplicates_removed"]:
                raise ReconciliationError(
                    f"batch {batch}, source {source}: {row['rows_in']} rows in but {row['accepted']} accepted + "
                    f"{row['quarantined']} quarantined + {row['duplicates_removed']} duplicates",
                    where=f"silver.{entity.table.name}", fix="this is a bug in a silver transform; nothing of the batch was written")
            rows.append(row)
    now = spark.sql("SELECT current_timestamp() AS t").first()["t"]
    return [{**row, "finished_at": now} for row in rows], quarantined_by_rule


def _quarantine_rows(entities: list[_Entity], batch: int) -> DataFrame | None:
    frames = []
    for entity in entities:
        bad = entity.triaged.where(F.col("fate") == QUARANTINED)
        frames.append(bad.select(
            F.lit(batch).cast("long").alias("batch_id"), F.lit(f"silver.{entity.table.name}").alias("target_table"),
            F.col("_source").alias("source"), F.col("_source_file").alias("source_file"),
            F.concat_ws("|", *[F.col(k).cast("string") for k in entity.key]).alias("record_key"),
            "broken_rules", F.coalesce(F.col("raw_record"), F.lit("")).alias("raw_record"),
            F.sha2(F.concat_ws("\u0001", F.col("_source_file"), F.col("raw_record")), 256).alias("record_hash"),
            F.current_timestamp().alias("quarantined_at")))
    if not frames:
        return None
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return conform(union, QUARANTINE)
