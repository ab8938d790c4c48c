"""``silver.customers_history``, ``silver.customer_identity_map``, ``silver.customer_id_redirects``
and ``silver.customers`` from one batch of customer CDC events.

Change feeds deliver the events; snapshot and incremental sources, and order lines with inline
customers, deliver states from which :mod:`crm_lakehouse.silver.snapshots` derives them.

Out-of-order and replayed events give the in-order result because a touched record's whole
history is replayed: its stored events plus the new ones, ordered by sequence number, a
replayed (already stored) sequence number counted as a duplicate. A delete ends the version
before it and is kept as a zero-length tombstone. The golden record takes, per attribute, the
value of the most recently changed live record of the cluster that has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from crm_lakehouse.entities import CUSTOMER_PROFILE
from crm_lakehouse.silver import identity, matching
from crm_lakehouse.silver.contracts import (
    CUSTOMER_ID_REDIRECTS, CUSTOMER_IDENTITY_MAP, CUSTOMERS, CUSTOMERS_HISTORY, IDENTITY_LINKS, conform,
)
from crm_lakehouse.silver.matching import ModelLinks
from crm_lakehouse.silver.quality import Expectation

RECORD = identity.RECORD
# (profiles before, profiles after, touched records) -> the batch's probabilistic links.
ScoreLinks = Callable[[DataFrame, DataFrame, DataFrame], "ModelLinks | None"]
PROFILE = tuple(CUSTOMER_PROFILE)
_HISTORY = "silver.customers_history'"

CUSTOMER_RULES = [
    Expectation("parseable_record", "NOT is_unparseable", "quarantine"),
    Expectation("has_source_customer_id", "source_customer_id IS NOT NULL", "quarantine",
                guards=f"{_HISTORY} NOT NULL source_customer_id"),
    # Snapshot and incremental sources get their operation from the comparison with the previous state.
    Expectation("known_operation", "derives_changes OR operation IS NOT NULL", "quarantine",
                guards=f"{_HISTORY} CHECK constraint known_operation"),
    # For snapshot and incremental sources the sequence is the file's export time (its name or arrival).
    Expectation("has_sequence_number", "sequence_number IS NOT NULL", "quarantine",
                guards=f"{_HISTORY} NOT NULL sequence_number"),
    # A snapshot or incremental file exported before the newest one applied: its states are history.
    Expectation("not_a_stale_export", "NOT is_stale_export", "quarantine"),
    Expectation("valid_attributes", "NOT has_invalid_attribute", "warn"),
    # Repaired by leaving the value out (the delivered text stays in quarantine-free raw lineage).
    Expectation("valid_email", "nullif(trim(raw.email), '') IS NULL OR email IS NOT NULL", "warn"),
    Expectation("valid_phone", "nullif(trim(raw.phone), '') IS NULL OR phone IS NOT NULL", "warn"),
    Expectation("parseable_signup_at", "nullif(trim(raw.signup_at), '') IS NULL OR signup_at IS NOT NULL", "warn"),
    Expectation("placeholder_email", "NOT is_placeholder_email", "warn"),
    Expectation("placeholder_phone", "NOT is_placeholder_phone", "warn"),
]


def flag_placeholders(staged: DataFrame, *, blocked_emails: Iterable[str], blocked_phones: Iterable[str]) -> DataFrame:
    """Mark e-mails and phones on the identity blocklist (they are kept, but never link), and
    phones typed as one digit repeated (0000000000), which are not even valid numbers."""
    filler = F.regexp_replace(F.col("raw.phone"), r"[^0-9]", "").rlike(r"^(\d)\1{5,}$")
    return staged.withColumn("is_placeholder_email", F.coalesce(F.col("email").isin(*sorted(blocked_emails) or [""]), F.lit(False))) \
        .withColumn("is_placeholder_phone", F.coalesce(F.col("phone").isin(*sorted(blocked_phones) or [""]) | filler, F.lit(False)))


def events(accepted: DataFrame) -> DataFrame:
    """Accepted staged CDC rows -> history-shaped events (no customer id, no validity yet).

    An event happened when the record says it was updated, else when its file was exported
    (snapshot and incremental sources), else when it was ingested.
    """
    return accepted.select(
        F.col("_source").alias("source"), "source_customer_id", F.col("_region").alias("region"),
        F.col("_channel").alias("channel"), "operation", "sequence_number", *PROFILE, "signup_at", "updated_at",
        "attributes", F.coalesce(F.col("updated_at"), F.col("_exported_at"), F.col("_ingested_at")).alias("event_at"),
        "_source_file",
    )


def not_yet_applied(new_events: DataFrame, history_before: DataFrame) -> DataFrame:
    """Flag ``is_replay``: the event's (record, sequence number) is already in the history."""
    applied = history_before.select(*RECORD, "sequence_number", F.lit(True).alias("is_replay"))
    return new_events.join(applied, [*RECORD, "sequence_number"], "left") \
        .withColumn("is_replay", F.coalesce(F.col("is_replay"), F.lit(False)))


def replay(stored: DataFrame, new_events: DataFrame) -> DataFrame:
    """The full history of every record in ``new_events``: versions ordered by sequence number.

    ``stored`` is the history before the batch (any rows; only the touched records are used).
    ``valid_from`` never goes backwards (an event stamped earlier than its predecessor starts
    when the predecessor did); ``valid_to`` is the next version's start; the last version is
    current unless it is a delete.
    """
    touched = new_events.select(*RECORD).distinct()
    previous = stored.join(touched, RECORD, "left_semi").select(
        *[c for c in new_events.columns if c not in ("event_at",)], F.col("valid_from").alias("event_at"))
    combined = previous.unionByName(new_events.select(*previous.columns))
    ordered = Window.partitionBy(*RECORD).orderBy("sequence_number")
    running = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    with_from = combined.withColumn("valid_from", F.max("event_at").over(running))
    next_from = F.lead("valid_from").over(ordered)
    is_delete = F.col("operation") == "delete"
    return with_from.select(
        *[c for c in combined.columns if c != "event_at"], "valid_from",
        F.when(is_delete, F.col("valid_from")).otherwise(next_from).alias("valid_to"),
        (next_from.isNull() & ~is_delete).alias("is_current"),
    )


def record_states(history: DataFrame) -> DataFrame:
    """One row per record: region, channel, first_seen_at and whether its last event deleted it."""
    last = Window.partitionBy(*RECORD).orderBy(F.col("sequence_number").desc())
    return history.withColumn("_rank", F.row_number().over(last)).groupBy(*RECORD).agg(
        F.max(F.when(F.col("_rank") == 1, F.col("region"))).alias("region"),
        F.max(F.when(F.col("_rank") == 1, F.col("channel"))).alias("channel"),
        F.min(F.coalesce(F.col("signup_at"), F.col("valid_from"))).alias("first_seen_at"),
        F.max(F.when(F.col("_rank") == 1, F.col("operation") == "delete")).alias("is_deleted"),
        F.max(F.when((F.col("_rank") == 1) & (F.col("operation") == "delete"), F.col("valid_from"))).alias("deleted_at"),
    )


def _latest_value(column: str, newest: list[Column], excluded: Iterable[str] = ()) -> Column:
    value = F.col(column)
    keep = value.isNotNull() & (~value.isin(*excluded) if excluded else F.lit(True))
    return F.max(F.when(keep, F.struct(*newest, value.alias("v")))).getField("v").alias(column)


def golden_customers(current: DataFrame, *, currency_of_region: dict[str, str], blocked_emails: Iterable[str],
                     blocked_phones: Iterable[str], batch_id: int) -> DataFrame:
    """One golden row per customer id from the current versions of its live records."""
    newest = [F.col("valid_from"), F.col("sequence_number"), F.col("source"), F.col("source_customer_id")]
    currency = F.create_map(*[p for k, v in sorted(currency_of_region.items()) for p in (F.lit(k), F.lit(v))])
    golden = current.groupBy("customer_id").agg(
        *[_latest_value(c, newest) for c in PROFILE if c not in ("email", "phone")],
        _latest_value("email", newest, sorted(blocked_emails)),
        _latest_value("phone", newest, sorted(blocked_phones)),
        _latest_value("region", newest),
        F.array_sort(F.collect_set("source")).alias("source_systems"),
        F.array_sort(F.collect_set("channel")).alias("channels"),
        F.count(F.lit(1)).cast("int").alias("record_count"),
        F.min(F.coalesce(F.col("signup_at"), F.col("valid_from"))).alias("first_seen_at"),
        F.max("valid_from").alias("updated_at"),
    )
    golden = golden.join(golden_attributes(current, newest), "customer_id", "left")
    return conform(golden.withColumn("home_currency", F.element_at(currency, F.col("region")))
                   .withColumn("_batch_id", F.lit(batch_id)), CUSTOMERS)


def golden_attributes(current: DataFrame, newest: list[Column]) -> DataFrame:
    """(customer_id, attributes): per attribute, the value of the most recently changed record
    that has one."""
    entries = current.select("customer_id", *newest, F.explode(F.coalesce(
        F.col("attributes"), F.create_map().cast("map<string,string>"))).alias("key", "value"))
    latest = entries.groupBy("customer_id", "key").agg(F.max(F.struct(*newest, F.col("value").alias("v")))
                                                       .getField("v").alias("value"))
    return latest.groupBy("customer_id").agg(F.map_from_entries(F.array_sort(F.collect_list(
        F.struct("key", "value")))).alias("attributes"))


@dataclass
class CustomerChanges:
    """The MERGE sources one customer batch produces, plus what changed for the other tables."""

    history: DataFrame          # rows to upsert into customers_history (key: record + sequence)
    identity_map: DataFrame     # rows to upsert into customer_identity_map
    redirects: DataFrame        # retired ids to upsert (with ``_delete`` to drop a revived id's redirect)
    customers: DataFrame        # golden rows to upsert, ``_delete`` rows to remove
    rekeyed: DataFrame          # (source, source_customer_id, customer_id) whose golden id is new or changed
    cached: list[DataFrame]     # checkpointed intermediates; unpersist once the writes are done
    links: DataFrame | None = None        # identity_links rows to upsert, ``_delete`` for links that are gone
    model_links: ModelLinks | None = None  # the model's review queue, new model version, pairs scored


def apply_events(new_events: DataFrame, *, history_before: DataFrame, identity_before: DataFrame,
                 redirects_before: DataFrame, cap: int, blocked_emails: Iterable[str], blocked_phones: Iterable[str],
                 match_keys: Iterable[str] = identity.MATCH_KEYS, currency_of_region: dict[str, str], batch_id: int,
                 shared_ids: dict[str, str] | None = None,
                 keep: Callable[[DataFrame, str], DataFrame] | None = None,
                 model_links: ScoreLinks | None = None, links_before: DataFrame | None = None) -> CustomerChanges:
    """Everything one batch of (deduplicated, not yet applied) customer events changes.

    ``keep`` materializes an intermediate (the batch's own, which logs and later unpersists it);
    without it each is checkpointed here and returned in ``cached``. ``model_links`` makes the
    probabilistic links from the live records' profiles before and after the batch and the
    touched records (:func:`crm_lakehouse.silver.matching.match`); ``links_before`` is
    silver.identity_links before the batch, without which no link is explained.
    """
    blocked = {"blocked_emails": blocked_emails, "blocked_phones": blocked_phones}
    keyed = {"match_keys": match_keys, "shared_ids": shared_ids, **blocked}
    touched = new_events.select(*RECORD).distinct()
    # Each is read several times: materialized once, and cut from its plan so that the steps
    # after it are planned quickly (the iterative clustering above all).
    cached: list[DataFrame] = []

    def reuse(df: DataFrame, what: str) -> DataFrame:
        if keep is not None:
            return keep(df, what)
        cached.append(df.localCheckpoint())
        return cached[-1]

    replayed = reuse(replay(history_before, new_events), "replayed histories")

    ids_before = identity.record_identifiers(history_before, **keyed)
    ids_touched = identity.record_identifiers(replayed, **keyed)
    ids_after = ids_before.join(touched, RECORD, "left_anti").unionByName(ids_touched)
    seeds = touched
    scored = None
    if model_links is not None:
        profiles_before = matching.current_profiles(history_before)
        profiles_after = profiles_before.join(touched, RECORD, "left_anti").unionByName(
            matching.current_profiles(replayed))
        scored = model_links(profiles_before, profiles_after, touched)
    if scored is not None:
        ids_before = ids_before.unionByName(scored.identifiers_before)
        ids_after = ids_after.unionByName(scored.identifiers_after)
        seeds = touched.unionByName(scored.rescored).distinct()
    ids_after = reuse(ids_after, "identifiers after")
    touched_ids = reuse(identity.touched_identifiers(ids_after, seeds), "touched identifiers")
    carried = reuse(identity.carriers(touched_ids, ids_before=ids_before, ids_after=ids_after),
                    "carriers of the touched identifiers")
    affected = reuse(identity.affected_records(touched=seeds, carried=carried, identity_before=identity_before,
                                               cap=cap), "affected records")

    # The affected records' full histories after the batch, still under their old ids.
    untouched_history = history_before.join(affected, RECORD, "left_semi").join(touched, RECORD, "left_anti")
    history_after = untouched_history.drop("customer_id", "_batch_id") \
        .unionByName(replayed.select(*untouched_history.drop("customer_id", "_batch_id").columns))
    states = record_states(history_after)
    edges = reuse(identity.linking_edges(ids_after, affected, cap), "links")
    components = identity.connected_components(affected.select(F.concat_ws("|", *RECORD).alias("node")),
                                               identity.as_nodes(edges))
    new_ids = reuse(identity.assign_customer_ids(states, components).join(states, RECORD), "new customer ids")

    old_ids = identity_before.select(*RECORD, F.col("customer_id").alias("old_customer_id"))
    compared = new_ids.join(old_ids, RECORD, "left")
    rekeyed = compared.where(F.col("old_customer_id").isNull() | (F.col("old_customer_id") != F.col("customer_id"))) \
        .select(*RECORD, "customer_id")

    history_rows = replayed.join(new_ids.select(*RECORD, "customer_id"), RECORD) \
        .unionByName(untouched_history.join(rekeyed, RECORD, "left_semi").drop("customer_id")
                     .join(new_ids.select(*RECORD, "customer_id"), RECORD).drop("_batch_id"), allowMissingColumns=True) \
        .withColumn("_batch_id", F.lit(batch_id))

    map_rows = conform(new_ids.withColumn("_batch_id", F.lit(batch_id)), CUSTOMER_IDENTITY_MAP)

    # A retired id is the old id of the affected records that no affected record carries any more;
    # it redirects to the new id of its own anchor record (the record whose hash it is).
    live_ids = new_ids.select("customer_id").distinct()
    retired = old_ids.join(affected, RECORD, "left_semi").select("old_customer_id").distinct() \
        .join(live_ids, F.col("old_customer_id") == F.col("customer_id"), "left_anti")
    anchors = new_ids.select(identity.golden_id(F.col("source"), F.col("source_customer_id")).alias("anchor_id"),
                             F.col("customer_id").alias("target_id"))
    new_redirects = retired.join(anchors, F.col("old_customer_id") == F.col("anchor_id")) \
        .select(F.col("old_customer_id").alias("retired_customer_id"), F.col("target_id").alias("customer_id"))
    chained = redirects_before.join(new_redirects.select(F.col("retired_customer_id").alias("customer_id"),
                                                         F.col("customer_id").alias("target_id")), "customer_id") \
        .select("retired_customer_id", F.col("target_id").alias("customer_id"))
    revived = redirects_before.join(live_ids.withColumnRenamed("customer_id", "retired_customer_id"),
                                    "retired_customer_id", "left_semi")
    redirect_rows = conform(new_redirects.unionByName(chained).withColumn("_batch_id", F.lit(batch_id)),
                            CUSTOMER_ID_REDIRECTS).withColumn("_delete", F.lit(False)) \
        .unionByName(revived.select(*CUSTOMER_ID_REDIRECTS.columns).withColumn("_delete", F.lit(True)))

    current = history_after.where("is_current").join(new_ids.select(*RECORD, "customer_id"), RECORD)
    golden = golden_customers(current, currency_of_region=currency_of_region, batch_id=batch_id, **blocked)
    gone = live_ids.unionByName(retired.select(F.col("old_customer_id").alias("customer_id"))) \
        .join(golden, "customer_id", "left_anti")
    customer_rows = golden.withColumn("_delete", F.lit(False)).unionByName(
        gone.withColumn("_delete", F.lit(True)), allowMissingColumns=True)
    link_rows = None
    if links_before is not None:
        link_rows = explained_links(edges, scored, links_before=links_before, affected=affected, batch_id=batch_id)
    return CustomerChanges(history=conform(history_rows, CUSTOMERS_HISTORY), identity_map=map_rows,
                           redirects=redirect_rows, customers=customer_rows, rekeyed=rekeyed, cached=cached,
                           links=link_rows, model_links=scored)


def explained_links(edges: DataFrame, scored: ModelLinks | None, *, links_before: DataFrame, affected: DataFrame,
                    batch_id: int) -> DataFrame:
    """silver.identity_links rows of the affected records: the shared keys' links among them, the
    model's for the rescored records, and (``_delete``) the stored ones that no longer hold."""
    keys = matching.unexplained_links(edges.where(F.col("linked_by") != "link"), batch_id)
    stored = links_before.select(*IDENTITY_LINKS.key)
    by_model = F.col("linked_by").isin(*matching.LINKED_BY_MODEL)
    stale = matching.pairs_touching(stored.where(~by_model), affected)
    new_rows = keys
    if scored is not None:
        new_rows = keys.unionByName(scored.links)
        stale = stale.unionByName(matching.pairs_touching(stored.where(by_model), scored.rescored))
    gone = stale.join(new_rows.select(*IDENTITY_LINKS.key), list(IDENTITY_LINKS.key),
                                                  "left_anti")
    return new_rows.withColumn("_delete", F.lit(False)).unionByName(
        gone.withColumn("_delete", F.lit(True)), allowMissingColumns=True)
