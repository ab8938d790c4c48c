"""The steps of one gold batch. Each declares the silver inputs (and the as-of date) it reads and
runs only when one of those changed in the batch; each counts what it affects and adds its MERGE
sources to the batch, which :mod:`crm_lakehouse.gold.build` then writes.

- sales: order lines changed in silver, or whose product's name or category or whose customer's
  country changed -> fact_sales, and the day and month groups those lines fall in;
- customers: any change to a customer's record, lines or interactions, or a score bound that
  time crossed -> customer_360.

A batch in which only interactions changed runs no sales step: no fact is read or written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.batches import BatchPlan, Kept, Step, run_steps
from crm_lakehouse.config import Settings
from crm_lakehouse.gold.contracts import CUSTOMER_360, FACT_SALES, SALES_DAILY, SALES_MONTHLY, UNKNOWN_CUSTOMER_ID
from crm_lakehouse.gold.customer_360 import (
    active_profiles, crossing_thresholds, customer_360, deleted_profiles, unknown_profile,
)
from crm_lakehouse.gold.sales import (
    GROUP, MONTH_GROUP, UNKNOWN_COUNTRY, fact_sales, month_groups, sales_daily, sales_groups, sales_monthly,
)
from crm_lakehouse.silver import contracts as silver
from crm_lakehouse.tables import TableContract

# Read by the customers step besides silver's tables: the batch's as-of date moved, so a recency
# bound or the end of the 90-day interaction window may have been crossed by time alone.
AS_OF_MOVED = "as-of date moved"


@dataclass
class Merge:
    contract: TableContract
    rows: DataFrame
    target_within: str | None = None    # SQL every target row the MERGE can match satisfies
    source_is_materialized: bool = False


@dataclass
class GoldBatch:
    """What the steps of one batch share: its inputs, and what the steps add to it."""

    plan: BatchPlan
    settings: Settings
    before: Mapping[str, DataFrame]        # every gold table as it was before the batch
    now: Mapping[str, DataFrame]           # silver's inputs as of the versions the batch consumes
    changed: dict[str, DataFrame]          # silver input -> its change feed over the batch
    keep: Kept
    as_of: str
    previous_as_of: str | None
    facts_after: DataFrame | None = None   # fact_sales as the batch leaves it (the sales step's, else as before)
    affected: dict[str, int] = field(default_factory=lambda: {"customers": 0, "lines": 0, "groups": 0})
    merges: list[Merge] = field(default_factory=list)

    @property
    def batch_id(self) -> int:
        return self.plan.batch_id

    @property
    def as_of_moved(self) -> bool:
        return self.previous_as_of is not None and self.previous_as_of != self.as_of


def run_gold_steps(batch: GoldBatch) -> None:
    changed = set(batch.changed)
    if batch.as_of_moved:
        changed.add(AS_OF_MOVED)
    batch.facts_after = batch.before[FACT_SALES.name]
    run_steps(STEPS, batch, changed, where=f"gold batch {batch.batch_id}")


def _sales(b: GoldBatch) -> None:
    lines, keep, batch = b.now[silver.ORDER_LINES.name], b.keep, b.batch_id
    line_key = list(FACT_SALES.key)
    touched_lines = _keys(b.changed, silver.ORDER_LINES.name, line_key)
    if silver.PRODUCTS.name in b.changed:
        products_changed = _renamed_or_recategorized(b.changed[silver.PRODUCTS.name])
        touched_lines = touched_lines.unionByName(
            lines.join(products_changed, "product_id", "left_semi").select(*line_key)).distinct()
    if silver.CUSTOMERS.name in b.changed:
        # A line without its own country shows its customer's: only a change of that touches it.
        touched_lines = touched_lines.unionByName(
            lines.where(F.col("country").isNull())
            .join(_moved_country(b.changed[silver.CUSTOMERS.name]), "customer_id", "left_semi")
            .select(*line_key)).distinct()
    touched_lines = keep(touched_lines, "touched order lines")
    b.affected["lines"] = touched_lines.count()
    if not b.affected["lines"]:
        return  # no fact and no sales group to change: no MERGE
    new_facts = keep(fact_sales(lines.join(touched_lines, line_key, "left_semi"), b.now[silver.PRODUCTS.name],
                                b.now[silver.CUSTOMERS.name], batch), "new facts")
    facts_before = b.before[FACT_SALES.name]
    b.facts_after = facts_before.join(touched_lines, line_key, "left_anti").unionByName(new_facts)
    b.merges.append(Merge(FACT_SALES, _with_deletes(new_facts, touched_lines.join(new_facts, line_key, "left_anti"))))

    groups = keep(sales_groups(facts_before.join(touched_lines, line_key, "left_semi")).unionByName(
        sales_groups(new_facts)).distinct(), "touched sales groups")
    b.affected["groups"] = groups.count()
    # Every fact and sales_daily row the batch reads or rewrites lies on a date of its groups (a
    # touched line's old and new date alike). Both tables are clustered by date, so naming the
    # dates lets Delta skip the files of every other day, in the reads and in the MERGEs.
    dates = sorted(row["sales_date"] for row in groups.select("sales_date").distinct().collect())
    b.merges[-1].target_within = _on_dates("t.order_local_date", dates)
    if not b.affected["groups"]:
        return  # lines that came and went within the batch were never facts: no group moves
    in_groups = b.facts_after.where(F.col("order_local_date").isin(dates)) \
        .withColumn("_country", F.coalesce("country", F.lit(UNKNOWN_COUNTRY))).join(
        groups.withColumnRenamed("sales_date", "order_local_date").withColumnRenamed("country", "_country"),
        ["order_local_date", "region", "_country", "channel", "category"], "left_semi").drop("_country")
    daily = sales_daily(in_groups, batch)
    b.merges.append(Merge(SALES_DAILY, _with_deletes(daily, groups.join(daily, GROUP, "left_anti")),
                          _on_dates("t.sales_date", dates)))

    # A touched month group is recomputed from all its facts: its distinct orders and customers
    # cannot be adjusted by the changed lines alone.
    months = sorted({d.replace(day=1) for d in dates})
    touched_months = keep(month_groups(groups), "touched month groups")
    in_months = b.facts_after.where(_in_months(F.col("order_local_date"), months)) \
        .withColumn("month", F.trunc("order_local_date", "month")) \
        .withColumn("_country", F.coalesce("country", F.lit(UNKNOWN_COUNTRY))) \
        .join(touched_months.withColumnRenamed("country", "_country"), ["month", "region", "_country", "channel"],
              "left_semi").drop("month", "_country")
    monthly = sales_monthly(in_months, batch)
    b.merges.append(Merge(SALES_MONTHLY, _with_deletes(monthly, touched_months.join(monthly, MONTH_GROUP, "left_anti")),
                          _on_dates("t.month", months)))


def _customers(b: GoldBatch) -> None:
    now, thresholds = b.now, b.settings.gold.rfm
    affected = _ids(b.changed, silver.CUSTOMERS.name).unionByName(_ids(b.changed, silver.ORDER_LINES.name)) \
        .unionByName(_ids(b.changed, silver.INTERACTIONS.name))
    if b.as_of_moved:
        affected = affected.unionByName(crossing_thresholds(
            b.before[CUSTOMER_360.name].select("customer_id", "last_order_date"), now[silver.INTERACTIONS.name],
            old_as_of=b.previous_as_of, new_as_of=b.as_of, thresholds=thresholds))
    affected = b.keep(affected.where(F.col("customer_id").isNotNull()).distinct(), "affected customers")
    b.affected["customers"] = affected.count()
    if not b.affected["customers"]:
        return
    live = active_profiles(now[silver.CUSTOMERS.name].join(affected, "customer_id", "left_semi"))
    facts_of_affected = b.facts_after.join(affected, "customer_id", "left_semi")
    profiles = live.unionByName(deleted_profiles(
        now[silver.CUSTOMER_IDENTITY_MAP.name], affected.join(live, "customer_id", "left_anti"),
        {r.code: r.currency for r in b.settings.regions.values()})).unionByName(
        unknown_profile(facts_of_affected, b.settings.reporting_currency))
    recomputed = customer_360(profiles, facts_of_affected,
                              now[silver.INTERACTIONS.name].join(affected, "customer_id", "left_semi"),
                              b.before[CUSTOMER_360.name].join(affected, "customer_id", "left_semi"),
                              as_of=b.as_of, thresholds=thresholds, batch_id=b.batch_id)
    rows = b.keep(_with_deletes(recomputed, affected.join(profiles, "customer_id", "left_anti")), "customer_360 rows")
    b.merges.append(Merge(CUSTOMER_360, rows, source_is_materialized=True))


STEPS = (
    Step("sales", frozenset({silver.ORDER_LINES.name, silver.PRODUCTS.name, silver.CUSTOMERS.name}), _sales),
    Step("customers", frozenset({silver.CUSTOMERS.name, silver.ORDER_LINES.name, silver.INTERACTIONS.name,
                                 AS_OF_MOVED}), _customers),
)


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


def _moved_country(customer_changes: DataFrame) -> DataFrame:
    """Customers whose country (what fact_sales shows for their lines without one) changed; an
    e-mail or name change touches no fact row. New and removed customers count: lines may name
    them. (customer_id)"""
    versions = customer_changes.groupBy("customer_id").agg(
        F.countDistinct(F.coalesce("country", F.lit(""))).alias("countries"),
        F.max(F.col("_change_type").isin("insert", "delete")).alias("appeared_or_went"))
    return versions.where((F.col("countries") > 1) | F.col("appeared_or_went")).select("customer_id")


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
