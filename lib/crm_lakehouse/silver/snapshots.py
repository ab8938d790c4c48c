"""Change events of customer sources that deliver states instead of changes.

- ``mode: snapshot``: each file is the system's full current state;
- ``mode: incremental``: each file holds the records changed since the previous one (no deletes);
- order lines with inline customers: each line carries its customer's current state.

The semantics are those of AUTO CDC FROM SNAPSHOT (Lakeflow): files are applied in the order of
their export time, which becomes the events' sequence number. A record whose state differs from
its previous one (or that had none, or was deleted) is an insert or an update; a record repeated
unchanged produces no event (its row counts as a duplicate); a record missing from a full
snapshot is deleted; a record that comes back after a delete is a new insert. A record whose row
in a snapshot was quarantined keeps its previous state rather than being deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.silver.identity import RECORD

PROFILE = ("full_name", "email", "phone", "gender", "birth_date", "country", "city", "address")
STATE = (*PROFILE, "signup_at", "updated_at", "attributes")
LIVE, DELETED = "L:", "D"


class SnapshotShrinkError(LakehouseError):
    """A full snapshot lost more of its records than the source allows: likely a broken export."""


def state_of(df: DataFrame) -> Column:
    """``L:<hash of the record's state>``; map keys sorted so equal attributes hash equally."""
    attributes = F.map_from_entries(F.array_sort(F.map_entries(F.coalesce(
        F.col("attributes"), F.create_map().cast("map<string,string>")))))
    parts = [F.col(c) for c in STATE if c != "attributes"] + [attributes.alias("attributes")]
    return F.concat(F.lit(LIVE), F.sha2(F.to_json(F.struct(*parts)), 256))


def previous_states(history: DataFrame, sources: list[str]) -> DataFrame:
    """(source, source_customer_id, sequence_number, state) of each record of ``sources``: the
    state its latest event left it in."""
    latest = Window.partitionBy(*RECORD).orderBy(F.col("sequence_number").desc())
    last = history.where(F.col("source").isin(sources)).withColumn("_rank", F.row_number().over(latest)) \
        .where("_rank = 1")
    return last.select(*RECORD, "sequence_number", F.when(F.col("operation") == "delete", F.lit(DELETED))
                       .otherwise(state_of(last)).alias("state"))


def applied_through(history: DataFrame, sources: list[str]) -> DataFrame:
    """(source, applied_sequence): the export time of the newest file already applied per source."""
    return history.where(F.col("source").isin(sources)).groupBy(F.col("source").alias("_source")) \
        .agg(F.max("sequence_number").alias("_applied_sequence"))


@dataclass
class DerivedChanges:
    events: DataFrame       # history-shaped events (operation, sequence_number, profile, event_at)
    unchanged: DataFrame    # (_source, count): accepted rows that repeated their record's state
    live_counts: DataFrame  # (source, sequence_number, live_before, live_after) per full snapshot


def derive_changes(rows: DataFrame, *, present: DataFrame, snapshots: DataFrame, previous: DataFrame,
                   full_snapshot_sources: list[str], places: dict[str, tuple[str, str]]) -> DerivedChanges:
    """Events from state rows.

    Args:
        rows: one accepted row per (record, sequence_number), event-shaped (see customers.events)
            without ``operation``.
        present: (source, source_customer_id, sequence_number) of every row of a full snapshot
            that names its record, accepted or not: a record present but rejected is not deleted.
        snapshots: (source, sequence_number) of every full snapshot in the batch.
        previous: :func:`previous_states` of the sources' records before the batch.
        full_snapshot_sources: the sources whose absent records are deletes.
        places: source -> (region, channel), for the tombstones of deleted records.
    """
    full = F.col("source").isin(full_snapshot_sources or [""])
    stated = rows.withColumn("state", state_of(rows))
    keyed = [*RECORD, "sequence_number"]
    universe = previous.where(full).select(*RECORD).unionByName(present.select(*RECORD)).distinct()
    grid = universe.join(snapshots, "source").join(stated.select(*keyed, "state"), keyed, "left") \
        .join(present.select(*keyed, F.lit(True).alias("_present")).distinct(), keyed, "left") \
        .select(*keyed, F.when(F.col("state").isNotNull(), F.col("state"))
                .when(F.col("_present"), F.lit(None).cast("string")).otherwise(F.lit(DELETED)).alias("state"))
    cells = grid.unionByName(stated.where(~full).select(*keyed, "state")).withColumn("_prior", F.lit(False))
    prior = previous.join(cells.select(*RECORD).distinct(), RECORD, "left_semi").withColumn("_prior", F.lit(True))
    order = Window.partitionBy(*RECORD).orderBy("sequence_number", F.col("_prior").desc())
    before = F.last("state", ignorenulls=True).over(order.rowsBetween(Window.unboundedPreceding, -1))
    timeline = cells.unionByName(prior.select(*cells.columns)).withColumn("_before", before) \
        .where(~F.col("_prior")).withColumn("_live", F.coalesce("state", "_before").startswith(LIVE))
    is_live, was_live = F.col("state").startswith(LIVE), F.coalesce(F.col("_before").startswith(LIVE), F.lit(False))
    kind = (F.when(is_live & ~was_live, F.lit("insert"))
            .when(is_live & (F.col("state") != F.col("_before")), F.lit("update"))
            .when(is_live, F.lit("unchanged"))
            .when((F.col("state") == DELETED) & was_live, F.lit("delete")))
    classified = timeline.withColumn("operation", kind).where(F.col("operation").isNotNull())

    upserts = stated.drop("state").join(classified.where(F.col("operation").isin("insert", "update"))
                                        .select(*keyed, "operation"), keyed)
    region = F.create_map(*[F.lit(v) for s, (r, _) in sorted(places.items()) for v in (s, r)])
    channel = F.create_map(*[F.lit(v) for s, (_, c) in sorted(places.items()) for v in (s, c)])
    deletes = classified.where(F.col("operation") == "delete").select(
        *keyed, "operation", F.element_at(region, F.col("source")).alias("region"),
        F.element_at(channel, F.col("source")).alias("channel"),
        F.timestamp_micros(F.col("sequence_number")).alias("event_at"))
    tombstones = deletes.select(*[F.col(c) if c in deletes.columns else F.lit(None).cast(rows.schema[c].dataType).alias(c)
                                  for c in upserts.columns])
    unchanged = classified.where(F.col("operation") == "unchanged").groupBy(F.col("source").alias("_source")).count()
    live_after = timeline.where(full).groupBy("source", "sequence_number").agg(
        F.sum(F.col("_live").cast("long")).alias("live_after"))
    live_prior = previous.where(full).groupBy("source").agg(
        F.sum(F.col("state").startswith(LIVE).cast("long")).alias("_prior_live"))
    counts = live_after.join(live_prior, "source", "left").withColumn("live_before", F.coalesce(
        F.lag("live_after").over(Window.partitionBy("source").orderBy("sequence_number")),
        F.col("_prior_live"), F.lit(0))).drop("_prior_live")
    return DerivedChanges(events=upserts.unionByName(tombstones.select(*upserts.columns)), unchanged=unchanged,
                          live_counts=counts)


def check_shrink(live_counts: list[dict], max_shrink: dict[str, float], files: dict[tuple[str, int], str]) -> None:
    """Raise when a full snapshot keeps fewer records than ``1 - max_shrink`` of those live
    before it: an empty or cut-off export must not delete a source's customers."""
    for row in sorted(live_counts, key=lambda r: (r["source"], r["sequence_number"])):
        before, after, allowed = row["live_before"], row["live_after"], max_shrink.get(row["source"], 1.0)
        if before and after < before * (1 - allowed):
            file = files.get((row["source"], row["sequence_number"]), "its snapshot file")
            raise SnapshotShrinkError(
                f"source {row['source']}: snapshot {file} has {after} live records, {1 - after / before:.0%} fewer "
                f"than the {before} before it (max_shrink {allowed:g}); nothing of the batch was written",
                where=file, fix="deliver the complete export under the same name, or raise max_shrink for the source "
                                "if the system really lost that many records")
