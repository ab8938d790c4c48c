"""The silver job: consume what bronze gained, in batches, into the silver tables.

Each batch is computed in full from its inputs (bronze change feed ranges, silver as it was
before the batch; the steps in :mod:`crm_lakehouse.silver.steps`) before anything is written, so a ``fail`` rule or a reconciliation error stops
it with nothing written. The writes follow, one commit per table, each idempotent through
Delta's (app id, batch id) pair; the run-log rows go last and mark the batch done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.batches import BatchPlan, Kept, read_appended
from crm_lakehouse.config import Settings, SourceConfig
from crm_lakehouse.delta_writes import WriteResult, append_once, rows_inserted, upsert
from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.mapping import check_expressions
from crm_lakehouse.silver.contracts import (
    CUSTOMERS_HISTORY, FX_RATES, INTERACTIONS, LAYER, ORDER_LINES, PRODUCTS, QUARANTINE, RUN_LOG, SILVER, conform,
    ensure_silver_tables, table_path,
)
from crm_lakehouse.silver.quality import ACCEPTED, DUPLICATE, QUARANTINED
from crm_lakehouse.silver.rules import check_rule_actions
from crm_lakehouse.silver.staging import stage
from crm_lakehouse.silver.steps import Entity, SilverBatch, run_silver_steps

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
    # What the matching model did: records rescored, candidate pairs scored, seconds to get the
    # model (to train it, when new) and to score (empty when off).
    identity: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def build_silver(spark: SparkSession, settings: Settings) -> list[BatchResult]:
    """Run every pending silver batch (an interrupted one first); [] when bronze has nothing new."""
    check_rule_actions(settings)
    check_expressions(spark, settings)  # a broken mapping expression stops here, before any row is read
    ensure_silver_tables(spark, settings)
    return SILVER.run_pending(spark, settings, inputs={s.name: settings.table_path("bronze", s.name)
                                                       for s in settings.sources},
                              run_batch=lambda plan: _run_batch(spark, settings, plan))


def _run_batch(spark: SparkSession, settings: Settings, plan: BatchPlan) -> BatchResult:
    started = time.monotonic()
    batch = plan.batch_id
    keep = Kept(LAYER, batch)
    staged = {entity: keep(rows, f"staged {entity}") for entity, rows in _staged_by_entity(spark, settings, plan).items()}
    work = SilverBatch(plan, settings, SILVER.as_of(spark, settings, plan.outputs_before), staged, keep)
    run_silver_steps(work)
    entities, merges, lines = work.entities, work.merges, work.order_lines_triaged

    reconciliation, quarantined_by_rule = _reconcile(spark, settings, plan, entities, work.duplicates, batch)
    result = BatchResult(batch_id=batch, resumed=plan.resumed, reconciliation=reconciliation,
                         quarantined_by_rule=quarantined_by_rule, identity=work.identity_figures)
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
        how = "append to" if result.writes[contract.name].operation == "WRITE" else "MERGE into"  # a first load appends
        log.info("silver batch %d: %s %s in %.1fs", batch, how, contract.name, time.monotonic() - merging)
    quarantine = _quarantine_rows(entities, batch)
    if quarantine is not None:
        result.writes[QUARANTINE.name] = append_once(spark, quarantine, table_path(settings, QUARANTINE), app_id=APP_ID,
                                                     version=batch)
    result.writes[RUN_LOG.name] = append_once(spark, spark.createDataFrame(reconciliation, RUN_LOG.schema),
                                              table_path(settings, RUN_LOG), app_id=APP_ID, version=batch)
    keep.release()
    result.seconds = round(time.monotonic() - started, 2)
    return result


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


def _reconcile(spark: SparkSession, settings: Settings, plan: BatchPlan, entities: list[Entity],
               duplicates: DataFrame | None, batch: int) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """One run-log row per source, and the quarantined rows per source and rule; raises when a
    source's bronze rows do not add up to their fates.

    Rows in are what bronze's own commits in the batch's range say they appended (Delta's commit
    metrics, read from the log without a job), apart from the transforms, so a join that loses or
    multiplies rows shows up here instead of in the tables; a source whose commits carry no
    metrics is counted on its change feed. ``duplicates`` counts accepted rows that changed
    nothing (replayed events, records repeated unchanged in a snapshot).
    """
    replayed = {row["_source"]: row["count"] for row in duplicates.collect()} if duplicates is not None else {}
    quarantined_by_rule: dict[str, dict[str, int]] = {}
    rows_in: dict[str, int] = {}
    uncounted = None
    for name, versions in plan.inputs.items():
        appended = rows_inserted(spark, settings.table_path("bronze", name), versions)
        if appended is not None:
            rows_in[name] = appended
            continue
        rows_of = _new_bronze(spark, settings, settings.source(name), plan).select(F.lit(name).alias("_source"))
        uncounted = rows_of if uncounted is None else uncounted.unionByName(rows_of)
    if uncounted is not None:
        rows_in.update({r["_source"]: r["count"] for r in uncounted.groupBy("_source").count().collect()})
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


def _quarantine_rows(entities: list[Entity], batch: int) -> DataFrame | None:
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
