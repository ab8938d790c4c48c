"""One silver batch's customer step: triage the delivered customer rows, turn states into events
(snapshot and incremental sources, inline customers of order lines), and apply every event.

Kept apart from the batch loop in :mod:`crm_lakehouse.silver.build` because three kinds of
customer source meet here: change feeds (events as delivered), state sources (events derived by
:mod:`crm_lakehouse.silver.snapshots`) and transaction logs whose lines carry their customer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from crm_lakehouse.config import SourceConfig
from crm_lakehouse.entities import CDC, INLINE_CUSTOMER_FIELDS, SNAPSHOT
from crm_lakehouse.silver import customers as cust
from crm_lakehouse.silver import snapshots
from crm_lakehouse.silver.quality import ACCEPTED, EXPRESSION_FAILURES, Expectation, triage

Keep = Callable[[DataFrame, str], DataFrame]


@dataclass
class CustomerBatch:
    triaged: DataFrame | None           # the customers sources' rows with their fate (None: none came)
    duplicates: DataFrame | None        # (_source, count) accepted rows that changed nothing (replays, repeats)
    changes: cust.CustomerChanges


def inline_customer_rows(staged_orders: DataFrame) -> DataFrame:
    """Order lines that carry their customer -> one state row per (record, order time).

    Only lines that name their customer and parse; the customer's state at the order's time is
    what the line says (``customer_*`` fields), and the order time orders the states.
    """
    usable = staged_orders.where(F.col("source_customer_id").isNotNull() & F.col("ordered_at").isNotNull()
                                 & ~F.col("is_unparseable") & F.col("file_problem").isNull()
                                 & (F.size(EXPRESSION_FAILURES) == 0))
    profile = [F.col(prefixed).alias(field) for prefixed, field in INLINE_CUSTOMER_FIELDS.items()]
    rows = usable.select(
        F.col("_source").alias("source"), "source_customer_id", F.col("_region").alias("region"),
        F.col("_channel").alias("channel"), F.unix_micros("ordered_at").alias("sequence_number"), *profile,
        F.lit(None).cast("timestamp").alias("signup_at"), F.lit(None).cast("timestamp").alias("updated_at"),
        F.lit(None).cast("map<string,string>").alias("attributes"), F.col("ordered_at").alias("event_at"),
        "_source_file")
    # Lines of one order share its time: one state per time, the same whichever file came first.
    one = Window.partitionBy("source", "source_customer_id", "sequence_number").orderBy(
        F.to_json(F.struct(*[c for c in rows.columns if c not in ("event_at", "attributes")])).desc())
    return rows.withColumn("_rank", F.row_number().over(one)).where("_rank = 1").drop("_rank")


def customer_batch(staged: DataFrame | None, inline_rows: DataFrame | None, *, sources: dict[str, SourceConfig],
                   in_batch: set[str],
                   rules: list[Expectation], history_before: DataFrame, identity_before: DataFrame,
                   redirects_before: DataFrame, identity_settings, currency_of_region: dict[str, str],
                   shared_ids: dict[str, str], batch_id: int, keep: Keep, model_links: cust.ScoreLinks | None = None,
                   links_before: DataFrame | None = None) -> CustomerBatch:
    """Everything the batch's customer records change (see the module docstring); ``in_batch``
    names the sources with new bronze rows in this batch; ``model_links`` and ``links_before``
    as :func:`crm_lakehouse.silver.customers.apply_events` takes them."""
    blocked = {"blocked_emails": identity_settings.blocked_emails, "blocked_phones": identity_settings.blocked_phones}
    state_sources = sorted(n for n, s in sources.items() if s.has_customer_records and s.mode != CDC)
    full_snapshots = sorted(n for n, s in sources.items() if s.mode == SNAPSHOT)
    # Only a batch with state rows pays for deriving events (a change feed's batch does not).
    derives = any(n in in_batch and sources[n].entity == "customers" for n in state_sources)
    triaged = duplicates = None
    event_frames: list[DataFrame] = []
    state_frames: list[DataFrame] = [inline_rows] if inline_rows is not None else []
    if staged is not None:
        flagged = cust.flag_placeholders(staged, **blocked)
        if derives:
            applied = snapshots.applied_through(history_before, state_sources)
            flagged = flagged.join(F.broadcast(applied), "_source", "left").withColumn(
                "is_stale_export", F.coalesce(F.col("derives_changes") & (F.col("sequence_number") <= F.col(
                    "_applied_sequence")), F.lit(False))).drop("_applied_sequence")
        else:
            flagged = flagged.withColumn("is_stale_export", F.lit(False))
        triaged = keep(triage(flagged, rules, table="silver.customers_history",
                              key=["_source", "source_customer_id", "sequence_number"],
                              newest_first=[F.col("_ingested_at").desc()]), "customer records triage")
        accepted = triaged.where(F.col("fate") == ACCEPTED)
        event_frames.append(cust.events(accepted.where(~F.col("derives_changes"))))
        if derives:
            state_frames.append(cust.events(accepted.where(F.col("derives_changes"))).drop("operation"))
    derived_repeats = None
    if state_frames:
        rows = state_frames[0]
        for frame in state_frames[1:]:
            rows = rows.unionByName(frame)
        previous = snapshots.previous_states(history_before, state_sources)
        # A line older than its customer's newest state (a late order) does not rewrite that state.
        rows = rows.join(previous.select(*cust.RECORD, F.col("sequence_number").alias("_prev")), cust.RECORD, "left") \
            .where(F.col("_prev").isNull() | (F.col("sequence_number") > F.col("_prev"))).drop("_prev")
        keyed = triaged.where(F.col("_source").isin(full_snapshots or [""]) & F.col("sequence_number").isNotNull()) \
            if triaged is not None else None
        empty = history_before.sparkSession.createDataFrame([], "source string, source_customer_id string, "
                                                                "sequence_number long")
        present = keyed.where(F.col("source_customer_id").isNotNull()).select(
            F.col("_source").alias("source"), "source_customer_id", "sequence_number") if keyed is not None else empty
        files = keyed.groupBy(F.col("_source").alias("source"), "sequence_number").agg(
            F.min("_source_file").alias("file")) if keyed is not None else empty.select(
            "source", "sequence_number", F.lit(None).cast("string").alias("file"))
        derived = snapshots.derive_changes(
            rows, present=present, snapshots=files.select("source", "sequence_number"), previous=previous,
            full_snapshot_sources=full_snapshots,
            places={n: (s.region, s.channel) for n, s in sources.items()})
        if any(n in in_batch for n in full_snapshots):
            counts = [r.asDict() for r in derived.live_counts.join(files, ["source", "sequence_number"], "left").collect()]
            snapshots.check_shrink(counts, {n: sources[n].max_shrink for n in full_snapshots},
                                   {(r["source"], r["sequence_number"]): r["file"] for r in counts})
        event_frames.append(derived.events.select(*event_frames[0].columns) if event_frames else derived.events)
        # Repeats count as duplicates of the customers sources they came from (inline ones are
        # order lines, reconciled with silver.order_lines).
        derived_repeats = derived.unchanged.where(F.col("_source").isin(
            [n for n in state_sources if sources[n].entity == "customers"] or [""]))
    all_events = event_frames[0]
    for frame in event_frames[1:]:
        all_events = all_events.unionByName(frame.select(*all_events.columns))
    events = keep(cust.not_yet_applied(all_events, history_before), "customer events")
    duplicates = events.where("is_replay").groupBy(F.col("source").alias("_source")).count()
    if derived_repeats is not None:
        duplicates = duplicates.unionByName(derived_repeats).groupBy("_source").agg(F.sum("count").alias("count"))
    changes = cust.apply_events(
        events.where(~F.col("is_replay")).drop("is_replay"), history_before=history_before,
        identity_before=identity_before, redirects_before=redirects_before,
        cap=identity_settings.max_records_per_identifier, match_keys=identity_settings.match_keys,
        currency_of_region=currency_of_region, shared_ids=shared_ids, batch_id=batch_id, keep=keep,
        model_links=model_links, links_before=links_before, **blocked)
    return CustomerBatch(triaged=triaged, duplicates=duplicates, changes=changes)
