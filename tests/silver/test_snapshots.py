"""Changes derived from snapshot and incremental customer files, on tiny inline states."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F

from crm_lakehouse.silver.snapshots import SnapshotShrinkError, check_shrink, derive_changes, previous_states

STATE_SCHEMA = (
    "source string, source_customer_id string, region string, channel string, sequence_number long, "
    "full_name string, email string, phone string, gender string, birth_date date, country string, city string, "
    "address string, signup_at timestamp, updated_at timestamp, attributes map<string,string>, event_at timestamp, "
    "_source_file string"
)
HISTORY_SCHEMA = "source string, source_customer_id string, sequence_number long, operation string, " + \
    ", ".join(STATE_SCHEMA.split(", ")[5:16])
SNAP, INC = "crm_snapshot", "crm_changes"
PLACES = {SNAP: ("eu", "web"), INC: ("eu", "store")}
KEYED = "source string, source_customer_id string, sequence_number long"


def state(source: str, sid: str, day: int, *, city: str = "Leeds", attributes: dict | None = None) -> tuple:
    at = dt.datetime(2026, 1, day)
    return (source, sid, "eu", PLACES[source][1], day, f"Name {sid}", f"{sid}@example.com", None, None, None, "GB",
            city, None, None, None, attributes, at, f"{source}_{day}.csv")


def empty_history(spark):
    return spark.createDataFrame([], HISTORY_SCHEMA)


def derive(spark, rows: list[tuple], history, *, present: list[tuple] | None = None, snapshots: list[int] = ()):
    states = spark.createDataFrame(rows, STATE_SCHEMA)
    seen = present if present is not None else [(r[0], r[1], r[4]) for r in rows if r[0] == SNAP]
    return derive_changes(states, present=spark.createDataFrame(seen, KEYED),
                          snapshots=spark.createDataFrame([(SNAP, d) for d in snapshots], "source string, sequence_number long"),
                          previous=previous_states(history, [SNAP, INC]), full_snapshot_sources=[SNAP], places=PLACES)


def operations(changes) -> list[tuple]:
    return sorted((r["source_customer_id"], r["sequence_number"], r["operation"], r["city"])
                  for r in changes.events.collect())


def as_history(spark, changes, history):
    """The history after applying ``changes`` (what silver's MERGE of the events would hold)."""
    rows = changes.events.select(*empty_history(spark).columns)
    return history.unionByName(rows).localCheckpoint()


def test_a_snapshot_inserts_new_records_updates_changed_ones_and_deletes_missing_ones(spark):
    day1 = [state(SNAP, "A", 1), state(SNAP, "B", 1), state(SNAP, "C", 1)]
    first = derive(spark, day1, empty_history(spark), snapshots=[1])
    assert operations(first) == [("A", 1, "insert", "Leeds"), ("B", 1, "insert", "Leeds"), ("C", 1, "insert", "Leeds")]
    history = as_history(spark, first, empty_history(spark))
    # Day 2: A unchanged, B moved, C missing (deleted), D new.
    day2 = [state(SNAP, "A", 2), state(SNAP, "B", 2, city="York"), state(SNAP, "D", 2)]
    second = derive(spark, day2, history, snapshots=[2])
    assert operations(second) == [("B", 2, "update", "York"), ("C", 2, "delete", None), ("D", 2, "insert", "Leeds")]
    assert [(r["_source"], r["count"]) for r in second.unchanged.collect()] == [(SNAP, 1)]
    tombstone = second.events.where("operation = 'delete'").first()
    assert (tombstone["region"], tombstone["channel"], tombstone["event_at"]) == ("eu", "web", dt.datetime(1970, 1, 1) +
                                                                                 dt.timedelta(microseconds=2))
    # Day 3: C comes back: a new insert after its delete.
    third = derive(spark, [state(SNAP, "A", 3), state(SNAP, "B", 3, city="York"), state(SNAP, "C", 3),
                           state(SNAP, "D", 3)], as_history(spark, second, history), snapshots=[3])
    assert operations(third) == [("C", 3, "insert", "Leeds")]


def test_several_snapshots_in_one_batch_give_the_same_events_as_one_batch_each(spark):
    nights = {1: [state(SNAP, "A", 1), state(SNAP, "B", 1)],
              2: [state(SNAP, "A", 2, city="York"), state(SNAP, "C", 2)],
              3: [state(SNAP, "A", 3, city="York"), state(SNAP, "B", 3), state(SNAP, "C", 3)]}
    history, one_by_one = empty_history(spark), []
    for night, rows in nights.items():
        changes = derive(spark, rows, history, snapshots=[night])
        one_by_one += operations(changes)
        history = as_history(spark, changes, history)
    at_once = derive(spark, [r for rows in nights.values() for r in rows], empty_history(spark), snapshots=[1, 2, 3])
    assert operations(at_once) == sorted(one_by_one)
    assert sorted(one_by_one) == [("A", 1, "insert", "Leeds"), ("A", 2, "update", "York"), ("B", 1, "insert", "Leeds"),
                                  ("B", 2, "delete", None), ("B", 3, "insert", "Leeds"), ("C", 2, "insert", "Leeds")]


def test_a_record_present_but_rejected_in_a_snapshot_keeps_its_state(spark):
    history = as_history(spark, derive(spark, [state(SNAP, "A", 1), state(SNAP, "B", 1)], empty_history(spark),
                                       snapshots=[1]), empty_history(spark))
    # B's row of night 2 was quarantined: it is present by key, so B is not deleted.
    changes = derive(spark, [state(SNAP, "A", 2)], history, present=[(SNAP, "A", 2), (SNAP, "B", 2)], snapshots=[2])
    assert operations(changes) == []
    counts = {(r["source"], r["sequence_number"]): (r["live_before"], r["live_after"]) for r in changes.live_counts.collect()}
    assert counts == {(SNAP, 2): (2, 2)}


def test_incremental_files_never_delete_and_attributes_count_as_state(spark):
    first = derive(spark, [state(INC, "X", 1, attributes={"plan": "basic"}), state(INC, "Y", 1)], empty_history(spark))
    history = as_history(spark, first, empty_history(spark))
    # Only X is in night 2's file, with a new plan: an update; Y stays; the map's key order does not matter.
    second = derive(spark, [state(INC, "X", 2, attributes={"plan": "premium"})], history)
    assert operations(second) == [("X", 2, "update", "Leeds")]
    third = derive(spark, [state(INC, "X", 3, attributes={"plan": "premium"})], as_history(spark, second, history))
    assert operations(third) == [] and third.unchanged.first()["count"] == 1


def test_a_snapshot_that_lost_most_of_its_records_stops_the_batch(spark):
    check_shrink([{"source": SNAP, "sequence_number": 2, "live_before": 100, "live_after": 60}], {SNAP: 0.5}, {})
    with pytest.raises(SnapshotShrinkError) as error:
        check_shrink([{"source": SNAP, "sequence_number": 2, "live_before": 100, "live_after": 40}], {SNAP: 0.5},
                     {(SNAP, 2): "contacts_2.csv"})
    assert "contacts_2.csv has 40 live records, 60% fewer than the 100 before it" in str(error.value)
    assert "\n" not in str(error.value)


def test_previous_states_mark_deleted_records(spark):
    history = spark.createDataFrame(
        [(SNAP, "A", 1, "insert", "Name A", None, None, None, None, "GB", "Leeds", None, None, None, None),
         (SNAP, "A", 2, "delete", None, None, None, None, None, None, None, None, None, None, None)], HISTORY_SCHEMA)
    [row] = previous_states(history, [SNAP]).collect()
    assert (row["sequence_number"], row["state"]) == (2, "D")
    assert previous_states(history.where(F.col("sequence_number") == 1), [SNAP]).first()["state"].startswith("L:")
