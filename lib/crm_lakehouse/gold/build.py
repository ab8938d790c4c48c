"""The gold job: maintain the marts from silver's Change Data Feed, recomputing only what changed.

A gold batch reads each silver input's change feed from the version after the last one consumed
to its current version (its plan, saved first), derives the affected order lines, sales groups
and customers, recomputes exactly those from silver as of the consumed versions, and MERGEs them
(unchanged rows are left alone). Customers whose scores change only because time passed — a
recency bound or the end of the 90-day interaction window crossed — are affected too. Every
write carries Delta's idempotency pair (app id ``crm-lakehouse:gold``, version = batch id), and
the run-log row, written last, marks the batch done: a crash and rerun neither skips nor
double-counts a change.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse import batches
from crm_lakehouse.config import Settings
from crm_lakehouse.delta_writes import WriteResult, append_once, is_delta_table, upsert
from crm_lakehouse.gold.contracts import (
    CUSTOMER_360, FACT_SALES, GOLD, LAYER, PROFILE_FROM_SILVER, RUN_LOG, SALES_MONTHLY, ensure_gold_tables,
)
from crm_lakehouse.gold.sales import sales_monthly
from crm_lakehouse.gold.steps import GoldBatch, run_gold_steps
from crm_lakehouse.silver import contracts as silver
from crm_lakehouse.tables import TableContract

log = logging.getLogger(__name__)

APP_ID = "crm-lakehouse:gold"
# The identity map tells a customer deleted in every source (kept, without PII) from one merged away.
INPUTS = (silver.CUSTOMERS, silver.ORDER_LINES, silver.INTERACTIONS, silver.PRODUCTS, silver.CUSTOMER_IDENTITY_MAP)


@dataclass
class GoldBatchResult:
    """What one gold batch did: its as-of date, affected keys and per-table write outcomes."""

    batch_id: int
    resumed: bool
    as_of_date: str
    affected: dict[str, int] = field(default_factory=dict)
    writes: dict[str, WriteResult] = field(default_factory=dict)
    seconds: float = 0.0


def build_gold(spark: SparkSession, settings: Settings) -> list[GoldBatchResult]:
    """Run every pending gold batch (an interrupted one first); [] when silver has not changed."""
    silver_paths = {c.name: silver.table_path(settings, c) for c in INPUTS}
    _fill_customer_profiles(spark, GOLD.paths(settings)[CUSTOMER_360.name], silver_paths[silver.CUSTOMERS.name])
    ensure_gold_tables(spark, settings)
    _fill_sales_monthly(spark, GOLD.paths(settings))
    return GOLD.run_pending(spark, settings, inputs=silver_paths,
                            run_batch=lambda plan: _run_batch(spark, settings, plan, silver_paths, GOLD.paths(settings)))


def _run_batch(spark: SparkSession, settings: Settings, plan: batches.BatchPlan, silver_paths: dict[str, str],
               gold_paths: dict[str, str]) -> GoldBatchResult:
    started = time.monotonic()
    now = batches.TablesAsOf(spark, paths=silver_paths, versions=plan.consumed, schemas={c.name: c.schema for c in INPUTS})
    before = GOLD.as_of(spark, settings, plan.outputs_before)
    previous_as_of = before[RUN_LOG.name].agg(F.max_by("as_of_date", "batch_id")).first()[0]
    work = GoldBatch(plan, settings, before, now,
                     changed={name: batches.read_changes(spark, silver_paths[name], versions)
                              for name, versions in plan.inputs.items()},
                     keep=batches.Kept(LAYER, plan.batch_id),
                     as_of=_as_of_date(now[silver.ORDER_LINES.name], now[silver.INTERACTIONS.name],
                                       now[silver.CUSTOMERS.name]),
                     previous_as_of=None if previous_as_of is None else str(previous_as_of))
    run_gold_steps(work)

    batch = plan.batch_id
    result = GoldBatchResult(batch_id=batch, resumed=plan.resumed, as_of_date=work.as_of, affected=work.affected)
    for merge in work.merges:
        result.writes[merge.contract.name] = upsert(
            spark, merge.rows, gold_paths[merge.contract.name], list(merge.contract.key), app_id=APP_ID, version=batch,
            delete_when="s._delete", insert_when="NOT s._delete", update_when=_differs(merge.contract),
            source_is_materialized=merge.source_is_materialized, target_within=merge.target_within)
    log_row = {"batch_id": batch, "as_of_date": dt.date.fromisoformat(work.as_of),
               "silver_versions": {name: [a, b] for name, (a, b) in sorted(plan.inputs.items())},
               "affected_customers": work.affected["customers"], "affected_lines": work.affected["lines"],
               "affected_groups": work.affected["groups"],
               "finished_at": spark.sql("SELECT current_timestamp() AS t").first()["t"]}
    result.writes[RUN_LOG.name] = append_once(spark, spark.createDataFrame([log_row], RUN_LOG.schema),
                                              gold_paths[RUN_LOG.name], app_id=APP_ID, version=batch)
    work.keep.release()
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _fill_customer_profiles(spark: SparkSession, customer_360_path: str, silver_customers_path: str) -> None:
    """A lakehouse made before gold.customer_360 carried the profile's contact columns gets them
    from silver.customers in one MERGE that also adds the columns (schema evolution), before
    ensure_gold_tables would add them empty: a rerun after a crash finds them added and filled,
    or neither. Customers that are not active keep none, as a batch would leave them."""
    if not is_delta_table(spark, customer_360_path) or not is_delta_table(spark, silver_customers_path):
        return
    table = DeltaTable.forPath(spark, customer_360_path)
    if set(PROFILE_FROM_SILVER) <= set(table.toDF().columns):
        return
    profiles = spark.read.format("delta").load(silver_customers_path).select("customer_id", *PROFILE_FROM_SILVER)
    table.alias("t").merge(profiles.alias("s"), "t.customer_id = s.customer_id AND t.customer_status = 'active'") \
        .withSchemaEvolution().whenMatchedUpdateAll().execute()
    log.info("gold.customer_360 given the profile's contact columns from silver.customers")


def _fill_sales_monthly(spark: SparkSession, gold_paths: dict[str, str]) -> None:
    """A lakehouse made before gold.sales_monthly gets it whole from fact_sales, once, before the
    next batch: a batch recomputes only the months it touches. Rerun after a crash, it finds the
    table filled (one atomic commit) or still empty."""
    facts = spark.read.format("delta").load(gold_paths[FACT_SALES.name])
    if not spark.read.format("delta").load(gold_paths[SALES_MONTHLY.name]).isEmpty() or facts.isEmpty():
        return
    last_batch = spark.read.format("delta").load(gold_paths[RUN_LOG.name]).agg(F.max("batch_id")).first()[0]
    sales_monthly(facts, -1 if last_batch is None else last_batch).write.format("delta").mode("append") \
        .save(gold_paths[SALES_MONTHLY.name])
    log.info("gold.sales_monthly filled from fact_sales for the lakehouse's past months")


def _as_of_date(lines: DataFrame, interactions: DataFrame, customers: DataFrame) -> str:
    """The latest local date in the data: orders or interactions, else (a customer master without
    either) the latest change of a customer record; a small aggregate."""
    latest = lines.select(F.max("order_local_date").alias("d")).unionByName(
        interactions.select(F.max("occurred_local_date").alias("d"))).agg(F.max("d")).first()[0]
    if latest is None:
        latest = customers.select(F.to_date(F.max("updated_at"))).first()[0]
    return str(latest) if latest is not None else "1970-01-01"


def _differs(contract: TableContract) -> str:
    """Update a matched row only when some column (other than the batch id) really changes."""
    from pyspark.sql.types import MapType

    def same(field) -> str:
        # Maps cannot be compared in SQL; the writers build them with sorted keys, so their JSON is canonical.
        if isinstance(field.dataType, MapType):
            return f"to_json(t.`{field.name}`) <=> to_json(s.`{field.name}`)"
        return f"t.`{field.name}` <=> s.`{field.name}`"

    return "NOT (" + " AND ".join(same(f) for f in contract.schema.fields if f.name != "_batch_id") + ")"
