"""CDC replay, SCD2 history and identity resolution on tiny hand-built event batches.

Batches are applied in memory (each batch's MERGE rows overlaid on the previous state), so these
tests check the transforms themselves; the Delta writes are covered by the end-to-end tests.
"""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from crm_lakehouse.silver import customers as cust
from crm_lakehouse.silver.steps import overlay as _overlay
from crm_lakehouse.silver.contracts import CUSTOMER_ID_REDIRECTS, CUSTOMER_IDENTITY_MAP, CUSTOMERS, CUSTOMERS_HISTORY
from crm_lakehouse.silver.identity import golden_id

EVENT_SCHEMA = (
    "source string, source_customer_id string, region string, channel string, operation string, sequence_number long, "
    "full_name string, email string, phone string, gender string, birth_date date, country string, city string, "
    "address string, signup_at timestamp, updated_at timestamp, attributes map<string,string>, event_at timestamp, "
    "_source_file string"
)
BLOCKED = {"blocked_emails": {"noemail@example.com"}, "blocked_phones": {"+12125550100"}}


def at(day: int) -> dt.datetime:
    return dt.datetime(2026, 1, 1) + dt.timedelta(days=day)


def event(source: str, sid: str, op: str, seq: int, day: int, *, name: str | None = "Ann Lee", email: str | None = None,
          phone: str | None = None, city: str | None = "Boston", birth: dt.date | None = None) -> tuple:
    live = op != "delete"
    return (source, sid, "us", source.split("_")[1], op, seq, name if live else None, email if live else None,
            phone if live else None, "F" if live else None, birth if live else None, "US" if live else None,
            city if live else None, None, at(day) if live else None, at(day), None, at(day), "f.json")


class State:
    """The silver customer tables of one in-memory lakehouse."""

    def __init__(self, spark):
        self.spark = spark
        empty = lambda c: spark.createDataFrame([], c.schema)  # noqa: E731
        self.history, self.identity = empty(CUSTOMERS_HISTORY), empty(CUSTOMER_IDENTITY_MAP)
        self.redirects, self.customers = empty(CUSTOMER_ID_REDIRECTS), empty(CUSTOMERS)
        self.batch = 0

    def apply(self, rows: list[tuple], *, cap: int = 6) -> cust.CustomerChanges:
        events = cust.not_yet_applied(self.spark.createDataFrame(rows, EVENT_SCHEMA), self.history) \
            .where(~F.col("is_replay")).drop("is_replay")
        changes = cust.apply_events(events, history_before=self.history, identity_before=self.identity,
                                    redirects_before=self.redirects, cap=cap, currency_of_region={"us": "USD"},
                                    batch_id=self.batch, **BLOCKED)
        self.history = _overlay(self.history, changes.history, CUSTOMERS_HISTORY.key).localCheckpoint()
        self.identity = _overlay(self.identity, changes.identity_map, CUSTOMER_IDENTITY_MAP.key).localCheckpoint()
        redirects = changes.redirects.localCheckpoint()
        self.redirects = _overlay(self.redirects, redirects.where(~F.col("_delete")).drop("_delete"),
                                  CUSTOMER_ID_REDIRECTS.key).join(
            redirects.where("_delete").select("retired_customer_id"), "retired_customer_id", "left_anti").localCheckpoint()
        golden = changes.customers.localCheckpoint()
        self.customers = _overlay(self.customers, golden.where(~F.col("_delete")).drop("_delete"), CUSTOMERS.key) \
            .join(golden.where("_delete").select("customer_id"), "customer_id", "left_anti").localCheckpoint()
        self.batch += 1
        return changes

    def versions(self) -> DataFrame:
        return self.history.select("source_customer_id", "sequence_number", "operation", "city", "valid_from", "valid_to",
                                   "is_current")


def test_out_of_order_and_replayed_events_give_the_in_order_history(spark):
    insert, stale, update = (event("us_web_customers", "A1", "insert", 10, 0, city="Boston"),
                             event("us_web_customers", "A1", "update", 20, 2, city="Denver"),
                             event("us_web_customers", "A1", "update", 30, 3, city="Austin"))
    in_order = State(spark)
    in_order.apply([insert, stale, update])
    late = State(spark)
    late.apply([insert, update])
    late.apply([stale, insert])   # the stale change arrives after the newer one, with a replay of the insert
    assert_df_equality(late.versions(), in_order.versions(), ignore_row_order=True)
    expected = spark.createDataFrame([
        ("A1", 10, "insert", "Boston", at(0), at(2), False),
        ("A1", 20, "update", "Denver", at(2), at(3), False),
        ("A1", 30, "update", "Austin", at(3), None, True),
    ], "source_customer_id string, sequence_number long, operation string, city string, valid_from timestamp, "
       "valid_to timestamp, is_current boolean")
    assert_df_equality(late.versions(), expected, ignore_row_order=True, ignore_nullable=True)
    assert late.customers.select("city").collect()[0]["city"] == "Austin"


def test_a_delete_ends_the_version_and_removes_the_customer(spark):
    state = State(spark)
    state.apply([event("us_web_customers", "A1", "insert", 10, 0, email="ann@x.com")])
    assert state.customers.count() == 1
    state.apply([event("us_web_customers", "A1", "delete", 20, 5)])
    expected = spark.createDataFrame([
        ("A1", 10, "insert", "Boston", at(0), at(5), False),
        ("A1", 20, "delete", None, at(5), at(5), False),
    ], "source_customer_id string, sequence_number long, operation string, city string, valid_from timestamp, "
       "valid_to timestamp, is_current boolean")
    assert_df_equality(state.versions(), expected, ignore_row_order=True, ignore_nullable=True)
    assert state.customers.count() == 0
    assert state.identity.select("is_deleted").collect()[0]["is_deleted"] is True


def test_shared_email_or_phone_links_records_but_placeholders_and_crowded_identifiers_do_not(spark):
    state = State(spark)
    state.apply([
        event("us_web_customers", "W1", "insert", 1, 0, name="Ann Lee", email="ann@x.com"),
        event("us_store_customers", "S1", "insert", 1, 1, name="Ann Lee", email="ann@x.com"),
        # Strangers sharing only a blocked e-mail or the store's own phone.
        event("us_web_customers", "W2", "insert", 1, 0, name="Bob Ray", email="noemail@example.com"),
        event("us_store_customers", "S2", "insert", 1, 0, name="Cy Dunn", email="noemail@example.com"),
        event("us_store_customers", "S3", "insert", 1, 0, name="Di Fox", phone="+12125550100"),
        # Four records sharing one phone, over a cap of three: not linked.
        *[event("us_partner_customers", f"P{i}", "insert", 1, 0, name=f"Guest {i}", phone="+16175550000")
          for i in range(4)],
    ], cap=3)
    ids = {r["source_customer_id"]: r["customer_id"] for r in state.identity.collect()}
    assert ids["W1"] == ids["S1"]
    assert len({ids["W2"], ids["S2"], ids["S3"]}) == 3
    assert len({ids[f"P{i}"] for i in range(4)}) == 4
    assert state.customers.count() == len(ids) - 1


def test_a_record_linking_two_customers_merges_them_into_the_older_id_and_redirects_the_other(spark):
    state = State(spark)
    state.apply([event("us_web_customers", "W1", "insert", 1, 0, name="Ann Lee", email="ann@x.com"),
                 event("us_store_customers", "S1", "insert", 1, 3, name="Ann Lee-Park", phone="+16175551234")])
    older, newer = golden_id(F.lit("us_web_customers"), F.lit("W1")), golden_id(F.lit("us_store_customers"), F.lit("S1"))
    older_id, newer_id = spark.range(1).select(older.alias("a"), newer.alias("b")).first()
    assert {r["customer_id"] for r in state.customers.collect()} == {older_id, newer_id}

    state.apply([event("us_partner_customers", "P1", "insert", 1, 5, name="A. Lee", email="ann@x.com",
                       phone="+16175551234")])
    assert {r["customer_id"] for r in state.identity.collect()} == {older_id}
    assert [tuple(r) for r in state.redirects.select("retired_customer_id", "customer_id").collect()] == [(newer_id, older_id)]
    merged = state.customers.collect()
    assert [r["customer_id"] for r in merged] == [older_id]
    assert merged[0]["record_count"] == 3
    assert merged[0]["source_systems"] == ["us_partner_customers", "us_store_customers", "us_web_customers"]
    # The history of the absorbed record now carries the surviving id too.
    assert {r["customer_id"] for r in state.history.collect()} == {older_id}


def test_golden_record_takes_each_attribute_from_the_latest_live_record_that_has_it(spark):
    state = State(spark)
    state.apply([event("us_web_customers", "W1", "insert", 1, 0, email="ann@x.com", phone="+16175551234", city="Boston"),
                 event("us_store_customers", "S1", "insert", 1, 4, email="ann@x.com", phone=None, city="Denver"),
                 event("us_store_customers", "S2", "insert", 1, 6, email="noemail@example.com", phone="+16175551234",
                       city=None)])
    row = state.customers.collect()
    assert len(row) == 1
    assert (row[0]["city"], row[0]["phone"], row[0]["email"]) == ("Denver", "+16175551234", "ann@x.com")
    assert row[0]["home_currency"] == "USD"
