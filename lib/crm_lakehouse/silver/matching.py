"""Probabilistic links in the silver batch: which records the model scores, with which model, and
what the batch writes about them.

A batch scores only the pairs that involve a *rescored* record against every other live record
(and each other): the records whose current version changed, those a data steward decided on
since their links were made, and those whose e-mail or phone crossed the cardinality cap. Blocking
keys choose the other records on the Spark side, so the driver receives only the candidates.
The pinned model (:func:`crm_lakehouse.silver.linkage.pinned`) gives a pair the same weight
whichever batch scores it, so day-by-day runs link what one run over all days links.

A link is an identifier that its two records share (``link:<the pair>``): the identity graph
clusters it like an e-mail. When a rescored record no longer scores with a record it was linked
to, the link is gone and the cluster may split (docs/identity.md).

The model is the newest row of ``silver.identity_model``: the file ``model`` in the config pins
one (a new file's content makes a new version); without one, the first batch with at least
``min_training_records`` live records trains it on them, and every later batch keeps it. A new
version rescores every record.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.config.settings import MatchingSettings
from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.silver import linkage, linkage_db, linkage_fields
from crm_lakehouse.silver.contracts import IDENTITY_LINKS, IDENTITY_MODEL, IDENTITY_REVIEW, conform
from crm_lakehouse.spark import release_checkpoint

log = logging.getLogger(__name__)

RECORD = ["source", "source_customer_id"]
PAIR = ["source_l", "source_customer_id_l", "source_r", "source_customer_id_r"]
LINKED_BY_MODEL = ("model", "confirmed")
_PROFILE = ["full_name", "birth_date", "email", "phone", "city", "address"]
PAIRS_PER_SLICE = 20_000


@dataclass
class ModelLinks:
    """What the model changes in one batch."""

    identifiers_before: DataFrame  # (source, source_customer_id, identifier) of the stored links
    identifiers_after: DataFrame   # the same after the batch
    rescored: DataFrame            # (source, source_customer_id) whose links were made anew
    links: DataFrame               # identity_links rows (linked_by model / confirmed) of rescored records
    review: DataFrame              # identity_review rows to upsert, ``_delete`` for pairs no longer in review
    model_row: DataFrame | None    # a new silver.identity_model version
    pairs_scored: int
    seconds: dict[str, float]      # getting the model (training it, when new) and scoring


@dataclass(frozen=True)
class Model:
    version: int
    pinned: dict
    is_new: bool
    file: str | None = None
    # The records it was trained on now (stored in the batch's DuckDB), none for a stored model.
    trained_on: linkage_db.StoredRecords | None = field(default=None, compare=False, repr=False)


def unexplained_links(pairs: DataFrame, batch_id: int) -> DataFrame:
    """identity_links rows for links no weight explains (a shared key, an unscored confirmation)."""
    explanation = [F.lit(None).cast(f.dataType).alias(f.name) for f in IDENTITY_LINKS.schema.fields
                   if f.name in ("match_weight", "match_probability", "levels", "weights")]
    return conform(pairs.select("*", *explanation, F.lit(batch_id).cast("long").alias("_batch_id")), IDENTITY_LINKS)


def link_identifiers(links: DataFrame) -> DataFrame:
    """(source, source_customer_id, identifier): each link as an identifier both its records carry."""
    identifier = F.concat(F.lit("link:"), F.to_json(F.array(*PAIR)))
    ends = [links.select(F.col(f"source_{side}").alias("source"),
                         F.col(f"source_customer_id_{side}").alias("source_customer_id"), identifier.alias("identifier"))
            for side in ("l", "r")]
    return ends[0].unionByName(ends[1])


def pairs_touching(pairs: DataFrame, records: DataFrame) -> DataFrame:
    """The rows of ``pairs`` (PAIR columns) with either record in ``records``."""
    left = pairs.join(records.select(F.col("source").alias("source_l"),
                                     F.col("source_customer_id").alias("source_customer_id_l")),
                      ["source_l", "source_customer_id_l"], "left_semi")
    right = pairs.join(records.select(F.col("source").alias("source_r"),
                                      F.col("source_customer_id").alias("source_customer_id_r")),
                       ["source_r", "source_customer_id_r"], "left_semi")
    return left.unionByName(right).distinct()


def current_profiles(history: DataFrame) -> DataFrame:
    """One row per live record: its current version's compared fields."""
    return history.where("is_current").select(*RECORD, *_PROFILE)


def comparable(profiles: DataFrame, *, blocked_emails: Iterable[str], blocked_phones: Iterable[str],
               cap: int) -> DataFrame:
    """The profiles without e-mails and phones that never link: blocked ones, and those more
    live records carry than the cardinality cap (a placeholder would agree for strangers)."""
    out = profiles
    for column, blocked in (("email", blocked_emails), ("phone", blocked_phones)):
        crowded = out.where(F.col(column).isNotNull()).groupBy(column).agg(F.count(F.lit(1)).alias("_n")) \
            .where(F.col("_n") > cap).select(column, F.lit(True).alias("_crowded"))
        out = out.join(F.broadcast(crowded), column, "left").withColumn(column, F.when(
            F.col("_crowded").isNull() & ~F.coalesce(F.col(column).isin(*sorted(blocked) or [""]), F.lit(False)),
            F.col(column))).drop("_crowded")
    return out


def block_keys(features: DataFrame) -> DataFrame:
    """(unique_id, block): one row per blocking rule whose expressions are all known."""
    keys = []
    for number, expressions in enumerate(linkage.BLOCKING):
        values = [F.expr(e) for e in expressions]
        known = reduce(lambda a, b: a & b, [v.isNotNull() for v in values])
        keys.append(F.when(known, F.to_json(F.array(F.lit(str(number)), *[v.cast("string") for v in values]))))
    return features.select(linkage.UNIQUE_ID, F.explode(F.array(*keys)).alias("block")).where("block IS NOT NULL")


def candidates(features: DataFrame, rescored_ids: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(changed, others): the rescored records' features, and those of the other records that
    share a block with one of them (the only ones a rescored record can be compared with)."""
    changed = features.join(rescored_ids, linkage.UNIQUE_ID, "left_semi")
    rest = features.join(rescored_ids, linkage.UNIQUE_ID, "left_anti")
    shared = block_keys(rest).join(block_keys(changed).select("block").distinct(), "block", "left_semi") \
        .select(linkage.UNIQUE_ID).distinct()
    return changed, rest.join(shared, linkage.UNIQUE_ID, "left_semi")


def current_model(spark: SparkSession, settings: MatchingSettings, model_table: DataFrame, *, batch_id: int,
                  live_records: DataFrame, database=None) -> Model | None:
    """The model this batch scores with (see the module docstring); None while there are too
    few records to train one. A model trained now is trained on ``live_records`` (materialised)
    stored in the DuckDB connection ``database`` (a new one of ``scoring_memory`` when none is
    given).

    ``model_table`` is silver.identity_model as it is now: a version this batch wrote before a
    crash is reused, so the rerun scores with the model the committed tables were made with.
    """
    stored = model_table.where(F.col("_batch_id") <= batch_id).orderBy(F.col("version").desc()).limit(1).collect()
    latest = stored[0] if stored else None
    next_version = latest.version + 1 if latest else 1
    if settings.model is not None:
        text = model_file_text(spark, settings.model)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if latest is not None and latest.model_sha256 == digest:
            return Model(latest.version, json.loads(latest.model), is_new=latest._batch_id == batch_id,
                         file=settings.model)
        return Model(next_version, json.loads(text), is_new=True, file=settings.model)
    if latest is not None:
        return Model(latest.version, json.loads(latest.model), is_new=latest._batch_id == batch_id)
    live = live_records.count()
    if live < settings.min_training_records:
        log.info("probabilistic matching waits for %d live records to train its model (%d so far)",
                 settings.min_training_records, live)
        return None
    log.info("training the probabilistic matching model on %d records", live)
    with within_scoring_memory(settings, live):
        if database is None:
            database = linkage_db.connect(settings.scoring_memory)
        records = linkage_db.store(database, "records", live_records, rows=live)
        trained = linkage.train_pinned(records)
    return Model(next_version, trained, is_new=True, trained_on=records)


@contextmanager
def within_scoring_memory(settings: MatchingSettings, records: int):
    """DuckDB running out of ``scoring_memory`` as one line naming the setting, not a traceback:
    the batch commits nothing, and its rerun with more memory resumes it."""
    import duckdb

    try:
        yield
    except duckdb.OutOfMemoryException:
        raise LakehouseError(
            f"identity matching ran out of its {settings.scoring_memory} of driver memory on {records:,} records",
            where="silver.identity.probabilistic.scoring_memory",
            fix="raise scoring_memory in the config (the driver needs it beside Spark's JVM) and run build_silver "
                "again") from None


def model_file_text(spark: SparkSession, path: str) -> str:
    """A pinned model file's JSON (any storage Spark reads); a clear error when it is no model."""
    where, fix = "silver.identity.probabilistic.model", \
        "name a file saved from silver.identity_model's model column, or unset it to train on the first batch"
    try:
        text = spark.read.text(path, wholetext=True).first()[0]
    except Exception as error:  # Spark's AnalysisException: a path that is not there
        raise LakehouseError(f"cannot read the model file {path}: {str(error).splitlines()[0]}", where=where,
                             fix=fix) from None
    try:
        model = json.loads(text)
        if not {"splink", "term_frequencies", "training_records"} <= set(model):
            raise ValueError("it lacks splink, term_frequencies or training_records")
    except ValueError as error:
        raise LakehouseError(f"{path} is not a matching model: {error}", where=where, fix=fix) from None
    return text


def model_row(spark: SparkSession, model: Model, batch_id: int) -> DataFrame:
    text = json.dumps(model.pinned, sort_keys=True)
    if model.file is not None:
        text = model_file_text(spark, model.file)
    row = (model.version, text, hashlib.sha256(text.encode()).hexdigest(), model.pinned["training_records"],
           model.file, batch_id)
    frame = spark.createDataFrame([row], "version int, model string, model_sha256 string, trained_on_records long, "
                                         "model_file string, _batch_id long")
    return conform(frame.withColumn("created_at", F.current_timestamp()), IDENTITY_MODEL)


def pending_decisions(decisions: DataFrame, links_before: DataFrame, review_before: DataFrame) -> DataFrame:
    """The records of pairs whose stored state disagrees with a steward: a confirmed pair not
    linked as such, a rejected pair linked or in review, a confirmed link no longer confirmed."""
    confirmed_links = links_before.where(F.col("linked_by") == "confirmed").select(*PAIR)
    model_links = links_before.where(F.col("linked_by") == "model").select(*PAIR)
    confirm = decisions.where(F.col("decision") == "confirm").select(*PAIR)
    reject = decisions.where(F.col("decision") == "reject").select(*PAIR)
    stale = confirm.join(confirmed_links, PAIR, "left_anti") \
        .unionByName(reject.join(model_links.unionByName(review_before.select(*PAIR)), PAIR, "left_semi")) \
        .unionByName(confirmed_links.join(confirm, PAIR, "left_anti"))
    return stale.select(F.col("source_l").alias("source"), F.col("source_customer_id_l").alias("source_customer_id")) \
        .unionByName(stale.select(F.col("source_r").alias("source"),
                                  F.col("source_customer_id_r").alias("source_customer_id"))).distinct()


def ordered_decisions(decisions: DataFrame) -> DataFrame:
    """Stewards may name a pair in either order; the tables keep the smaller record left."""
    swap = (F.col("source_l") > F.col("source_r")) | (
        (F.col("source_l") == F.col("source_r")) & (F.col("source_customer_id_l") > F.col("source_customer_id_r")))
    return decisions.select(
        *[F.when(swap, F.col(f"{c}_r")).otherwise(F.col(f"{c}_l")).alias(f"{c}_l") for c in RECORD],
        *[F.when(swap, F.col(f"{c}_l")).otherwise(F.col(f"{c}_r")).alias(f"{c}_r") for c in RECORD],
        "decision")


def match(spark: SparkSession, settings: MatchingSettings, *, profiles_before: DataFrame, profiles_after: DataFrame,
          touched: DataFrame,
          links_before: DataFrame, review_before: DataFrame, decisions: DataFrame, model_table: DataFrame,
          blocked_emails: Iterable[str], blocked_phones: Iterable[str], cap: int, batch_id: int) -> ModelLinks | None:
    """The batch's model links (see the module docstring); None while no model can be had."""
    model_links_before = links_before.where(F.col("linked_by").isin(*LINKED_BY_MODEL))
    decisions = ordered_decisions(decisions)
    profiles = comparable(profiles_after, blocked_emails=blocked_emails, blocked_phones=blocked_phones, cap=cap)
    features = linkage_fields.linkage_records(profiles, linkage_fields.nickname_table(spark)).localCheckpoint()
    # The records the model is trained on and scores live in DuckDB, not as Python objects: the
    # connection is closed, and its memory given back, when the scored pairs are out.
    with linkage_db.connect(settings.scoring_memory) as database:
        started = time.monotonic()
        model = current_model(spark, settings, model_table, batch_id=batch_id, live_records=features,
                              database=database)
        model_s = time.monotonic() - started
        if model is None:
            return None
        rescored, scored, compared, scoring_s = _scored(
            settings, model, database, features=features, profiles_before=profiles_before,
            profiles_after=profiles_after, touched=touched, cap=cap,
            pending=pending_decisions(decisions, model_links_before, review_before))
    decided = decisions.join(pairs_touching(decisions.select(*PAIR), rescored), PAIR, "left_semi").toPandas()
    decided_by_id = _as_unique_ids(decided)
    # The explained pairs are Python dicts: a slice at a time, so a first load's tens of thousands
    # of pairs are not all held as objects at once.
    link_slices, review_slices = [], []
    for start in range(0, max(len(scored), 1), PAIRS_PER_SLICE):
        explained = linkage.explained(model.pinned, scored.iloc[start:start + PAIRS_PER_SLICE])
        links, review = linkage.decide(explained, link_at=settings.link_at, review_from=settings.review_from,
                                       decisions=decided_by_id)
        link_slices.append(_pair_rows(spark, links, with_linked_by=True))
        review_slices.append(_pair_rows(spark, review, with_linked_by=False))
    link_rows, review_rows = (reduce(DataFrame.unionByName, slices) for slices in (link_slices, review_slices))
    # A confirmed pair links even when the model did not score it (no shared block, a low weight).
    scored_pairs = link_rows.select(*PAIR)
    confirmed_only = decided[decided.decision == "confirm"]
    if len(confirmed_only):
        unscored = _live_pairs(spark.createDataFrame(confirmed_only[PAIR]).join(scored_pairs, PAIR, "left_anti"),
                               profiles_after)
        link_rows = link_rows.unionByName(unexplained_links(unscored.withColumn("linked_by", F.lit("confirmed")),
                                                            batch_id))
    link_rows = link_rows.withColumn("_batch_id", F.lit(batch_id)).localCheckpoint()
    review_rows = review_rows.withColumn("_batch_id", F.lit(batch_id))
    reviewed = review_before.select(*PAIR) if model.is_new else pairs_touching(review_before.select(*PAIR), rescored)
    gone_from_review = reviewed.join(review_rows.select(*PAIR), PAIR, "left_anti")
    review_out = review_rows.withColumn("_delete", F.lit(False)).unionByName(
        gone_from_review.withColumn("_delete", F.lit(True)), allowMissingColumns=True)
    # A new model remakes every link: none of the old model's is kept.
    kept = model_links_before.limit(0) if model.is_new else \
        model_links_before.join(pairs_touching(model_links_before.select(*PAIR), rescored), PAIR, "left_anti")
    return ModelLinks(
        identifiers_before=link_identifiers(model_links_before),
        identifiers_after=link_identifiers(kept.select(*PAIR).unionByName(link_rows.select(*PAIR))),
        rescored=rescored, links=link_rows, review=review_out,
        model_row=model_row(spark, model, batch_id) if model.is_new else None,
        pairs_scored=compared, seconds={"model": round(model_s, 2), "scoring": round(scoring_s, 2)})


def _scored(settings: MatchingSettings, model: Model, database, *, features: DataFrame, profiles_before: DataFrame,
            profiles_after: DataFrame, touched: DataFrame, cap: int, pending: DataFrame):
    """(rescored records, their scored pairs, how many pairs were compared, seconds): the pairs
    that can link or wait for review, out of DuckDB (a first load compares millions)."""
    if model.is_new:
        rescored = profiles_after.select(*RECORD)
    else:
        rescored = reduce(DataFrame.unionByName, [
            touched.select(*RECORD), crossed_the_cap(profiles_before, profiles_after, touched, cap),
            pending]).distinct()
    rescored = rescored.localCheckpoint()
    started = time.monotonic()
    if model.trained_on is not None:  # every record is rescored: the training records, stored once
        changed_records, other_records, sizes = model.trained_on, None, (len(model.trained_on), 0)
    else:
        # Each is read to count it and then a slice at a time: materialised once.
        changed, others = (frame.localCheckpoint() for frame in candidates(
            features, rescored.select(F.concat_ws(":", *RECORD).alias(linkage.UNIQUE_ID))))
        sizes = changed.count(), others.count()
    with within_scoring_memory(settings, sum(sizes)):
        if model.trained_on is None:
            changed_records = linkage_db.store(database, "changed", changed, rows=sizes[0])
            other_records = linkage_db.store(database, "others", others, rows=sizes[1])
            release_checkpoint(changed)
            release_checkpoint(others)
        scored = linkage.score(model.pinned, changed_records, other_records,
                               threshold_match_weight=settings.review_from)
        compared = linkage.candidate_pairs(changed_records, other_records)
    return rescored, scored, compared, time.monotonic() - started


def _live_pairs(pairs: DataFrame, profiles: DataFrame) -> DataFrame:
    """The pairs whose two records are live."""
    for side in ("l", "r"):
        pairs = pairs.join(profiles.select(F.col("source").alias(f"source_{side}"),
                                           F.col("source_customer_id").alias(f"source_customer_id_{side}")),
                           [f"source_{side}", f"source_customer_id_{side}"], "left_semi")
    return pairs


def crossed_the_cap(profiles_before: DataFrame, profiles_after: DataFrame, touched: DataFrame, cap: int) -> DataFrame:
    """The live records carrying an e-mail or phone that a touched record carried before or after
    the batch and that went over or back under the cap: their features change without an event."""
    before, after = _contacts(profiles_before), _contacts(profiles_after)
    # The touched records' few values, cut from their plan: each is looked up twice on both sides.
    values = before.join(touched, RECORD, "left_semi").unionByName(after.join(touched, RECORD, "left_semi")) \
        .select("kind", "value").distinct().localCheckpoint()
    carriers = before.join(values, ["kind", "value"], "left_semi").withColumn("after", F.lit(False)) \
        .unionByName(after.join(values, ["kind", "value"], "left_semi").withColumn("after", F.lit(True)))
    counts = carriers.groupBy("kind", "value").agg(F.count(F.when(~F.col("after"), 1)).alias("b"),
                                                   F.count(F.when(F.col("after"), 1)).alias("a"))
    crossed = counts.where((F.col("b") > cap) != (F.col("a") > cap)).select("kind", "value")
    return carriers.where("after").join(crossed, ["kind", "value"], "left_semi").select(*RECORD).distinct()


def _contacts(profiles: DataFrame) -> DataFrame:
    """(source, source_customer_id, kind, value): each profile's e-mail and phone, one row each."""
    return profiles.select(*RECORD, F.explode(F.array(
        F.struct(F.lit("email").alias("kind"), F.col("email").alias("value")),
        F.struct(F.lit("phone").alias("kind"), F.col("phone").alias("value"))))).select(*RECORD, "col.*") \
        .where(F.col("value").isNotNull())


def _as_unique_ids(decided):
    import pandas as pd

    return pd.DataFrame({"record_l": decided.source_l + ":" + decided.source_customer_id_l,
                         "record_r": decided.source_r + ":" + decided.source_customer_id_r,
                         "decision": decided.decision})


def _record(unique_id: str) -> tuple[str, str]:
    """(source, source_customer_id) of a linkage record's unique id: a source's name has no colon
    (config/sources.py), so the first one ends it."""
    source, source_customer_id = unique_id.split(":", 1)
    return source, source_customer_id


def _pair_rows(spark: SparkSession, pairs, *, with_linked_by: bool) -> DataFrame:
    """identity_links / identity_review rows from :func:`linkage.explained` pairs (unique ids
    turned back into records, the smaller record left)."""
    rows = []
    for pair in pairs.to_dict("records"):
        left, right = sorted((_record(pair["record_l"]), _record(pair["record_r"])))
        row = [*left, *right]
        if with_linked_by:
            row.append(pair["linked_by"])
        row += [pair["match_weight"], pair["match_probability"], pair["levels"], pair["weights"]]
        rows.append(tuple(row))
    schema = ("source_l string, source_customer_id_l string, source_r string, source_customer_id_r string, "
              + ("linked_by string, " if with_linked_by else "")
              + "match_weight double, match_probability double, levels map<string,string>, weights map<string,double>")
    frame = spark.createDataFrame(rows, schema).withColumn("_batch_id", F.lit(0).cast("long"))
    return conform(frame, IDENTITY_LINKS if with_linked_by else IDENTITY_REVIEW)
