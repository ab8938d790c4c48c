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
from functools import reduce
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse import batches
from crm_lakehouse.config import Settings
from crm_lakehouse.delta_writes import WriteResult, append_once, upsert
from crm_lakehouse.gold.contracts import (
    CUSTOMER_360, FACT_SALES, GOLD, LAYER, RUN_LOG, SALES_DAILY, SALES_MONTHLY, UNKNOWN_CUSTOMER_ID,
    ensure_gold_tables,
)
from crm_lakehouse.gold.customer_360 import (
    active_profiles, crossing_thresholds, customer_360, deleted_profiles, unknown_profile,
)
from crm_lakehouse.gold.sales import (
    GROUP, MONTH_GROUP, UNKNOWN_COUNTRY, fact_sales, month_groups, sales_daily, sales_groups, sales_monthly,
)
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
    ensure_gold_tables(spark, settings)
    _fill_sales_monthly(spark, GOLD.paths(settings))
    silver_paths = {c.name: silver.table_path(settings, c) for c in INPUTS}
    return GOLD.run_pending(spark, settings, inputs=silver_paths,
                            run_batch=lambda plan: _run_batch(spark, settings, plan, silver_paths, GOLD.paths(settings)))


def _run_batch(spark: SparkSession, settings: Settings, plan: batches.BatchPlan, silver_paths: dict[str, str],
               gold_paths: dict[str, str]) -> GoldBatchResult:
    started = time.monotonic()
    batch = plan.batch_id
    thresholds = settings.gold.rfm
    before = GOLD.as_of(spark, settings, plan.outputs_before)
    now = batches.TablesAsOf(spark, paths=silver_paths, versions=plan.consumed, schemas={c.name: c.schema for c in INPUTS})
    changed = {name: batches.read_changes(spark, silver_paths[name], versions) for name, versions in plan.inputs.items()}
    keep = batches.Kept(LAYER, batch)

    as_of = _as_of_date(now[silver.ORDER_LINES.name], now[silver.INTERACTIONS.name], now[silver.CUSTOMERS.name])
    previous_as_of = before[RUN_LOG.name].agg(F.max_by("as_of_date", "batch_id")).first()[0]

    # Order lines: changed in silver, or their product's name or category changed.
    line_key = list(FACT_SALES.key)
    touched_lines = _keys(changed, silver.ORDER_LINES.name, line_key)
    if silver.PRODUCTS.name in changed:
        products_changed = _renamed_or_recategorized(changed[silver.PRODUCTS.name])
        touched_lines = touched_lines.unionByName(
            now[silver.ORDER_LINES.name].join(products_changed, "product_id", "left_semi").select(*line_key)).distinct()
    if silver.CUSTOMERS.name in changed:
        # A line without its own country shows its customer's, which may have changed.
        customers_changed = changed[silver.CUSTOMERS.name].select("customer_id").distinct()
        touched_lines = touched_lines.unionByName(
            now[silver.ORDER_LINES.name].where(F.col("country").isNull())
            .join(customers_changed, "customer_id", "left_semi").select(*line_key)).distinct()
    touched_lines = keep(touched_lines, "touched order lines")
    new_facts = keep(fact_sales(now[silver.ORDER_LINES.name].join(touched_lines, line_key, "left_semi"),
                                now[silver.PRODUCTS.name], now[silver.CUSTOMERS.name], batch), "new facts")
    gone_lines = touched_lines.join(new_facts, line_key, "left_anti")
    facts_before = before[FACT_SALES.name]
    facts_after = facts_before.join(touched_lines, line_key, "left_anti").unionByName(new_facts)
    fact_rows = _with_deletes(new_facts, gone_lines)

    groups = keep(sales_groups(facts_before.join(touched_lines, line_key, "left_semi")).unionByName(
        sales_groups(new_facts)).distinct(), "touched sales groups")
    # Every fact and sales_daily row the batch reads or rewrites lies on a date of its groups (a
    # touched line's old and new date alike). Both tables are clustered by date, so naming the
    # dates lets Delta skip the files of every other day, in the reads and in the MERGEs.
    dates = sorted(row["sales_date"] for row in groups.select("sales_date").distinct().collect())
    on_dates = {FACT_SALES.name: _on_dates("t.order_local_date", dates),
                SALES_DAILY.name: _on_dates("t.sales_date", dates)}
    in_groups = facts_after.where(F.col("order_local_date").isin(dates)) \
        .withColumn("_country", F.coalesce("country", F.lit(UNKNOWN_COUNTRY))).join(
        groups.withColumnRenamed("sales_date", "order_local_date").withColumnRenamed("country", "_country"),
        ["order_local_date", "region", "_country", "channel", "category"], "left_semi").drop("_country")
    daily = sales_daily(in_groups, batch)
    daily_rows = _with_deletes(daily, groups.join(daily, GROUP, "left_anti"))

    # A touched month group is recomputed from all its facts: its distinct orders and customers
    # cannot be adjusted by the changed lines alone.
    months = sorted({d.replace(day=1) for d in dates})
    touched_months = keep(month_groups(groups), "touched month groups")
    in_months = facts_after.where(_in_months(F.col("order_local_date"), months)) \
        .withColumn("month", F.trunc("order_local_date", "month")) \
        .withColumn("_country", F.coalesce("country", F.lit(UNKNOWN_COUNTRY))) \
        .join(touched_months.withColumnRenamed("country", "_country"), ["month", "region", "_country", "channel"],
              "left_semi").drop("month", "_country")
    monthly = sales_monthly(in_months, batch)
    monthly_rows = _with_deletes(monthly, touched_months.join(monthly, MONTH_GROUP, "left_anti"))
    on_dates[SALES_MONTHLY.name] = _on_dates("t.month", months)

    # Customers: any change to their record, lines or interactions, or a threshold crossed by time.
    affected = _ids(changed, silver.CUSTOMERS.name).unionByName(_ids(changed, silver.ORDER_LINES.name)) \
        .unionByName(_ids(changed, silver.INTERACTIONS.name))
    if previous_as_of is not None and str(previous_as_of) != as_of:
        affected = affected.unionByName(crossing_thresholds(
            before[CUSTOMER_360.name].select("customer_id", "last_order_date"), now[silver.INTERACTIONS.name],
            old_as_of=str(previous_as_of), new_as_of=as_of, thresholds=thresholds))
    affected = keep(affected.where(F.col("customer_id").isNotNull()).distinct(), "affected customers")
    live = active_profiles(now[silver.CUSTOMERS.name].join(affected, "customer_id", "left_semi"))
    facts_of_affected = facts_after.join(affected, "customer_id", "left_semi")
    profiles = live.unionByName(deleted_profiles(
        now[silver.CUSTOMER_IDENTITY_MAP.name], affected.join(live, "customer_id", "left_anti"),
        {r.code: r.currency for r in settings.regions.values()})).unionByName(
        unknown_profile(facts_of_affected, settings.reporting_currency))
    recomputed = customer_360(profiles, facts_of_affected,
                              now[silver.INTERACTIONS.name].join(affected, "customer_id", "left_semi"),
                              before[CUSTOMER_360.name].join(affected, "customer_id", "left_semi"),
                              as_of=as_of, thresholds=thresholds, batch_id=batch)
    customer_rows = keep(_with_deletes(recomputed, affected.join(profiles, "customer_id", "left_anti")),
                         "customer_360 rows")

    result = GoldBatchResult(batch_id=batch, resumed=plan.resumed, as_of_date=as_of, affected={
        "customers": affected.count(), "lines": touched_lines.count(), "groups": groups.count()})
    # No touched line means no fact and no sales group to change: those MERGEs are not run.
    for contract, rows in ((FACT_SALES, fact_rows if result.affected["lines"] else None),
                           (SALES_DAILY, daily_rows if result.affected["groups"] else None),
                           (SALES_MONTHLY, monthly_rows if result.affected["groups"] else None),
                           (CUSTOMER_360, customer_rows if result.affected["customers"] else None)):
        if rows is None:
            continue
        result.writes[contract.name] = upsert(
            spark, rows, gold_paths[contract.name], list(contract.key), app_id=APP_ID, version=batch,
            delete_when="s._delete", insert_when="NOT s._delete", update_when=_differs(contract),
            source_is_materialized=rows is customer_rows, target_within=on_dates.get(contract.name))
    log_row = {"batch_id": batch, "as_of_date": dt.date.fromisoformat(as_of),
               "silver_versions": {name: [a, b] for name, (a, b) in sorted(plan.inputs.items())},
               "affected_customers": result.affected["customers"], "affected_lines": result.affected["lines"],
               "affected_groups": result.affected["groups"],
               "finished_at": spark.sql("SELECT current_timestamp() AS t").first()["t"]}
    result.writes[RUN_LOG.name] = append_once(spark, spark.createDataFrame([log_row], RUN_LOG.schema),
                                              gold_paths[RUN_LOG.name], app_id=APP_ID, version=batch)
    keep.release()
    result.seconds = round(time.monotonic() - started, 2)
    return result


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


def _keys(changed: dict[str, DataFrame], table: str, key: list[str]) -> DataFrame:
    if table not in changed:
        return changed[next(iter(changed))].sparkSession.createDataFrame([], ", ".join(
            f"{k} {'int' if k == 'line_number' else 'string'}" for k in key))
    return changed[table].select(*key).distinct()


def _ids(changed: dict[str, DataFrame], table: str) -> DataFrame:
    """Customer ids a table's changes touch; a line without one touches the unknown member."""
    if table not in changed:
        return changed[next(iter(changed))].sparkSession.createDataFrame([], "customer_id string")
    ids = changed[table].select("customer_id")
    if table != silver.ORDER_LINES.name:
        return ids
    return ids.select(F.coalesce("customer_id", F.lit(UNKNOWN_CUSTOMER_ID)).alias("customer_id"))


def _renamed_or_recategorized(product_changes: DataFrame) -> DataFrame:
    """Products whose name or category (what fact_sales shows) changed; a price change alone
    touches no fact row. New and deleted products count: lines may name them. (product_id)"""
    shown = F.concat_ws("\u0001", F.coalesce("product_name", F.lit("")), F.coalesce("category", F.lit("")))
    versions = product_changes.groupBy("product_id").agg(
        F.countDistinct(shown).alias("looks"),
        F.max(F.col("_change_type").isin("insert", "delete")).alias("appeared_or_went"))
    return versions.where((F.col("looks") > 1) | F.col("appeared_or_went")).select("product_id")


def _in_months(day: Column, months: list[dt.date]) -> Column:
    """``day`` falls in one of ``months`` (their first days), as date ranges the files' statistics can skip by."""
    ranges = [(day >= F.lit(m)) & (day < F.add_months(F.lit(m), 1)) for m in months]
    return reduce(lambda a, b: a | b, ranges, F.lit(False))


def _on_dates(column: str, dates: list[dt.date]) -> str:
    """SQL: ``column`` is one of ``dates`` (false for none)."""
    return f"{column} IN ({', '.join(f'DATE {d.isoformat()!r}' for d in dates)})" if dates else "false"


def _with_deletes(rows: DataFrame, gone: DataFrame) -> DataFrame:
    """MERGE source: the rows to upsert, plus key-only rows flagged ``_delete``."""
    return rows.withColumn("_delete", F.lit(False)).unionByName(gone.withColumn("_delete", F.lit(True)),
                                                                allowMissingColumns=True)


def _differs(contract: TableContract) -> str:
    """Update a matched row only when some column (other than the batch id) really changes."""
    from pyspark.sql.types import MapType

    def same(field) -> str:
        # Maps cannot be compared in SQL; the writers build them with sorted keys, so their JSON is canonical.
        if isinstance(field.dataType, MapType):
            return f"to_json(t.`{field.name}`) <=> to_json(s.`{field.name}`)"
        return f"t.`{field.name}` <=> s.`{field.name}`"

    return "NOT (" + " AND ".join(same(f) for f in contract.schema.fields if f.name != "_batch_id") + ")"
