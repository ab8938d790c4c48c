"""One function per Delta write pattern, each idempotent per (app id, version).

Delta records the last committed version per application id in the table's log (SetTransaction).
Appends pass it as writer options; MERGE, UPDATE and DELETE read it from the session confs
``spark.databricks.delta.write.txnAppId`` / ``txnVersion``. Those confs stay set after the
commit, so a later MERGE in the same session with the same pair would be silently skipped:
:func:`idempotent_dml` sets them for exactly one statement and always unsets them.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from delta import exceptions as delta_exceptions
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from crm_lakehouse import storage
from crm_lakehouse.config import join_path

log = logging.getLogger(__name__)

TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"
# Optimistic concurrency: a commit that lost the race to another writer (a job, maintain, erase)
# is recomputed against the new snapshot. Each retry waits longer, with jitter, so two losers
# do not collide again.
CONFLICTS = (delta_exceptions.ConcurrentAppendException, delta_exceptions.ConcurrentDeleteReadException,
             delta_exceptions.ConcurrentDeleteDeleteException, delta_exceptions.ConcurrentTransactionException,
             delta_exceptions.ConcurrentWriteException, delta_exceptions.MetadataChangedException,
             delta_exceptions.ProtocolChangedException)
MAX_ATTEMPTS = 5
MATERIALIZE_SOURCE = "spark.databricks.delta.merge.materializeSource"


@dataclass(frozen=True)
class WriteResult:
    """What a write did: skipped when Delta had already committed this (app id, version)."""

    skipped: bool
    table_version: int
    metrics: dict[str, str]
    attempts: int = 1
    operation: str = ""  # the commit's, as DESCRIBE HISTORY shows it ("MERGE", "WRITE"); "" when skipped


def retry_conflicts(write: Callable[[], None], what: str) -> int:
    """Run ``write`` (one Delta commit), again when another writer's commit conflicted with it;
    returns the attempts it took. Other errors, and the last conflict, propagate."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            write()
            return attempt
        except CONFLICTS as conflict:
            if attempt == MAX_ATTEMPTS:
                raise
            wait = 0.5 * 2 ** (attempt - 1) * (1 + random.random())
            log.warning("%s: concurrent write conflict (%s), retry %d in %.1fs", what, type(conflict).__name__,
                        attempt, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def is_delta_table(spark: SparkSession, path: str) -> bool:
    return storage.exists(spark, join_path(path, "_delta_log"))


def table_version(spark: SparkSession, path: str) -> int:
    """The table's latest version, or -1 when there is no table yet.

    Read from the names of the commit files (``_delta_log/<version>.json``, the Delta protocol's
    layout; the newest is never cleaned up), which needs no Spark job.
    """
    log_dir = join_path(path, "_delta_log")
    if not storage.exists(spark, log_dir):
        return -1
    versions = [int(name.rsplit("/", 1)[-1][:-5]) for name in storage.list_files(spark, log_dir)
                if re.fullmatch(r"\d{20}\.json", name.rsplit("/", 1)[-1])]
    return max(versions, default=-1)


def ensure_table(spark: SparkSession, path: str, schema: StructType, *, partition_by: tuple[str, ...] = (),
                 cluster_by: tuple[str, ...] = (), constraints: dict[str, str] | None = None,
                 properties: dict[str, str] | None = None, change_data_feed: bool = True,
                 comments: dict[str, str] | None = None) -> None:
    """Create the table with its contract schema if missing; add any CHECK constraint it lacks.

    NOT NULL comes from the schema's non-nullable fields; CHECK constraints are named SQL
    conditions, set at creation in the same commit (``delta.constraints.<name>``), or added with
    ALTER TABLE (which validates the rows already there) when a contract gained a rule.
    Change Data Feed is on by default: the next layer reads what changed. ``cluster_by`` makes
    the table liquid-clustered on those columns (OPTIMIZE then co-locates rows by them).
    ``comments`` (column -> text) become the columns' comments, which every reader of the table's
    schema shows (JDBC metadata, DESCRIBE, delta-rs); one that changed is rewritten in place.
    """
    comments = comments or {}
    if not is_delta_table(spark, path):
        described = StructType([StructField(f.name, f.dataType, f.nullable, {**f.metadata, "comment": comments[f.name]})
                                if f.name in comments else f for f in schema.fields])
        builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(described)
        if partition_by:
            builder = builder.partitionedBy(*partition_by)
        if cluster_by:
            builder = builder.clusterBy(*cluster_by)
        for key, value in (properties or {}).items():
            builder = builder.property(key, value)
        if change_data_feed:
            builder = builder.property("delta.enableChangeDataFeed", "true")
        for name, condition in (constraints or {}).items():
            builder = builder.property(f"delta.constraints.{name.lower()}", condition)
        builder.execute()
        return
    present = _evolve_columns(spark, path, schema)
    for name, text in comments.items():
        if name not in present or present[name].metadata.get("comment") != text:
            spark.sql(f"ALTER TABLE delta.`{path}` ALTER COLUMN `{name}` COMMENT {sql_string(text)}")
    existing = {row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}
    # A property a newer contract declares reaches tables made before it (deletion vectors did).
    lacking = {key: value for key, value in (properties or {}).items() if existing.get(key) != value}
    if lacking:
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ("
                  + ", ".join(f"{sql_string(k)} = {sql_string(v)}" for k, v in sorted(lacking.items())) + ")")
    for name, condition in (constraints or {}).items():
        current = existing.get(f"delta.constraints.{name.lower()}")
        if current is not None and " ".join(current.split()) != " ".join(condition.split()):
            # The contract's rule changed (e.g. returns became legal): the new one replaces it,
            # validated against the rows already there.
            spark.sql(f"ALTER TABLE delta.`{path}` DROP CONSTRAINT {name}")
            current = None
        if current is None:
            spark.sql(f"ALTER TABLE delta.`{path}` ADD CONSTRAINT {name} CHECK ({condition})")


def sql_string(text: str) -> str:
    """``text`` as a Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _evolve_columns(spark: SparkSession, path: str, schema: StructType) -> dict[str, StructField]:
    """Add the nullable columns a contract gained; refuse a table the contract no longer
    describes (a renamed or retyped column), naming the rebuild that fixes it. Returns the
    table's columns as they were before."""
    from crm_lakehouse.errors import LakehouseError

    present = {f.name: f for f in DeltaTable.forPath(spark, path).toDF().schema.fields}
    wanted = {f.name for f in schema.fields}
    stale = sorted(set(present) - wanted)
    missing = [f for f in schema.fields if f.name not in present]
    if stale or any(not f.nullable for f in missing):
        gone = stale or [f.name for f in missing if not f.nullable]
        raise LakehouseError(
            f"the table was written by an older version (columns {', '.join(gone)} differ from its contract)",
            where=path, fix="rebuild the layer: delete this table's layer folder and its _checkpoints/<layer> "
                            "folder, then rerun the jobs (bronze keeps every row)")
    if missing:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")
    return present


def drop_deletion_vectors(spark: SparkSession, path: str) -> None:
    """Turn deletion vectors off for good: rewrite the files that have some, then drop the table
    feature (Delta 4 drops it without truncating history), so any Delta reader can open it."""
    features = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["tableFeatures"] or []
    if "deletionVectors" not in features:
        return
    spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('delta.enableDeletionVectors' = 'false')")
    spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
    spark.sql(f"ALTER TABLE delta.`{path}` DROP FEATURE deletionVectors")


@contextmanager
def idempotent_dml(spark: SparkSession, app_id: str, version: int) -> Iterator[None]:
    """Make the one DML statement run inside this block a no-op if (app_id, version) was committed."""
    spark.conf.set(TXN_APP_ID, app_id)
    spark.conf.set(TXN_VERSION, str(version))
    try:
        yield
    finally:
        spark.conf.unset(TXN_APP_ID)
        spark.conf.unset(TXN_VERSION)


@contextmanager
def _session_conf(spark: SparkSession, key: str, value: str | None) -> Iterator[None]:
    """``key`` set to ``value`` inside the block (unchanged when None), restored after."""
    if value is None:
        yield
        return
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


def upsert(spark: SparkSession, source: DataFrame, path: str, keys: list[str], *, app_id: str | None = None,
           version: int | None = None,
           delete_when: str | None = None, update_when: str | None = None,
           insert_when: str | None = None, source_is_materialized: bool = False,
           target_within: str | None = None) -> WriteResult:
    """MERGE ``source`` into the table on ``keys``: update matches, insert the rest.

    Only the target's columns are written; extra source columns (a ``_delete`` flag) may steer
    the conditions, which are SQL over ``s.``/``t.`` columns:

    - ``delete_when``: delete a matched row instead (CDC deletes, retired ids);
    - ``update_when``: update a matched row only then (skip stale or unchanged rows);
    - ``insert_when``: insert an unmatched row only then (never insert a delete marker).

    The source must hold one row per key; duplicates make MERGE fail by design. With ``app_id``
    and ``version`` the commit is skipped when that pair was committed before; without them,
    make the MERGE idempotent by content (an ``update_when`` that compares the columns).

    Into a table that holds no rows yet (a first load), with ``app_id`` and ``version``, the
    rows ``insert_when`` keeps are appended instead: nothing can match, so that is the MERGE's
    whole effect, without its join and second pass. The commit is then a WRITE, not a MERGE.

    ``source_is_materialized``: the source is a (local) checkpoint, so Delta need not copy it
    before reading it twice — its default for any source that is not a plain Delta scan.

    ``target_within``: SQL over ``t.`` columns that every target row the source matches
    satisfies (say, the dates a batch touched). Delta then reads only the files whose statistics
    can hold such rows; a matching row outside it would be inserted again, so it must be sure.
    """
    if not keys:
        raise ValueError("upsert needs at least one key column")
    missing = [k for k in keys if k not in source.columns]
    if missing:
        raise ValueError(f"upsert into {path}: key columns {missing} are not in the source")
    before = table_version(spark, path)
    if app_id is not None and version is not None and _checksum(spark, path, before).get("numFiles") == 0:
        return _append_inserts(spark, source, path, before, app_id=app_id, version=version, insert_when=insert_when)
    table = DeltaTable.forPath(spark, path)
    columns = {c: f"s.`{c}`" for c in table.toDF().columns}
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    if target_within:
        condition = f"({target_within}) AND {condition}"
    merge = table.alias("t").merge(source.alias("s"), condition)
    if delete_when:
        merge = merge.whenMatchedDelete(condition=delete_when)
    merge = merge.whenMatchedUpdate(condition=update_when, set=columns) \
        .whenNotMatchedInsert(condition=insert_when, values=columns)

    def execute() -> None:
        with _session_conf(spark, MATERIALIZE_SOURCE, "none" if source_is_materialized else None):
            if app_id is None:
                merge.execute()
            else:
                with idempotent_dml(spark, app_id, version):
                    merge.execute()

    attempts = retry_conflicts(execute, f"MERGE into {path}")
    return _result(spark, path, before, attempts)


def _append_inserts(spark: SparkSession, source: DataFrame, path: str, before: int, *, app_id: str, version: int,
                    insert_when: str | None) -> WriteResult:
    """What a MERGE into an empty table inserts, appended (see :func:`upsert`): the target's
    columns of the rows ``insert_when`` keeps, cast to the target's types as MERGE assigns them.
    Two writers of the same batch conflict on the (app id, version) pair, and the one retried
    then finds it committed."""
    rows = source.alias("s")
    if insert_when:
        rows = rows.where(F.expr(insert_when))
    target = spark.read.format("delta").load(path).schema
    rows = rows.select(*[F.col(f"s.`{f.name}`").cast(f.dataType).alias(f.name) for f in target.fields])
    writer = rows.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", version)
    attempts = retry_conflicts(lambda: writer.save(path), f"append into {path}")
    return _result(spark, path, before, attempts)


def update_columns(spark: SparkSession, source: DataFrame, path: str, keys: list[str], columns: list[str], *,
                   update_when: str | None = None) -> WriteResult:
    """MERGE that sets only ``columns`` of rows matching ``source`` on ``keys``; inserts nothing.

    For a job that owns some columns of another job's table (scores in a profile table).
    Idempotent by content: with ``update_when`` comparing the columns, a rerun changes nothing.
    """
    table = DeltaTable.forPath(spark, path)
    before = table_version(spark, path)
    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    merge = table.alias("t").merge(source.alias("s"), condition) \
        .whenMatchedUpdate(condition=update_when, set={c: f"s.`{c}`" for c in columns})
    attempts = retry_conflicts(merge.execute, f"MERGE into {path}")
    return _result(spark, path, before, attempts)


def append_once(spark: SparkSession, df: DataFrame, path: str, *, app_id: str, version: int,
                partition_by: tuple[str, ...] = ()) -> WriteResult:
    """Append ``df`` unless this (app_id, version) was already committed to the table."""
    before = table_version(spark, path)
    writer = df.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", version)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    writer.save(path)
    return _result(spark, path, before)


def _result(spark: SparkSession, path: str, before: int, attempts: int = 1) -> WriteResult:
    after = table_version(spark, path)
    if after == before:
        log.info("skipped: this batch was already committed (table version %s)", before)
        return WriteResult(skipped=True, table_version=before, metrics={}, attempts=attempts)
    info = commit_info(spark, path, after)
    return WriteResult(skipped=False, table_version=after, metrics=info.get("operationMetrics", {}),
                       attempts=attempts, operation=info.get("operation", ""))


def commit_actions(spark: SparkSession, path: str, version: int) -> list[dict]:
    """The actions of one commit (``commitInfo``, ``add``, ``remove``, ``cdc``, …), read from its
    file in ``_delta_log``, without a snapshot load or a Spark job."""
    text = storage.read_text(spark, join_path(path, "_delta_log", f"{version:020d}.json"))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _checksum(spark: SparkSession, path: str, version: int) -> dict:
    """The checksum file Delta writes beside each commit (the table's size, file and row counts
    at ``version``), read without a snapshot load or a Spark job; {} when that file is missing
    or unreadable (a writer that writes none)."""
    try:
        return json.loads(storage.read_text(spark, join_path(path, "_delta_log", f"{version:020d}.crc")))
    except Exception:  # py4j wraps the FileNotFoundException; a missing checksum means unknown
        return {}


def table_bytes(spark: SparkSession, path: str, version: int) -> int | None:
    """The size of the table's data files at ``version`` (``tableSizeBytes`` of its checksum
    file); None when unknown."""
    size = _checksum(spark, path, version).get("tableSizeBytes")
    return None if size is None else int(size)


def commit_info(spark: SparkSession, path: str, version: int) -> dict:
    """The ``commitInfo`` action of one commit (operation, parameters, metrics): what ``DESCRIBE
    HISTORY`` shows for it ({} for a commit written without one, which the protocol allows)."""
    return next((action["commitInfo"] for action in commit_actions(spark, path, version) if "commitInfo" in action), {})


# Operations that never insert a row, whatever files they rewrite (their change feed holds
# deletes or update images only).
_NEVER_INSERTING = ("DELETE", "UPDATE")


def changes_rows(spark: SparkSession, path: str, versions: tuple[int, int], *, inserts_only: bool = False) -> bool:
    """Whether any commit in ``versions`` (inclusive) changed rows — with ``inserts_only``,
    inserted any. OPTIMIZE, REORG, VACUUM and property changes do not (their files carry
    ``dataChange: false``), nor, for ``inserts_only``, a DELETE or a MERGE that only deleted.
    True when it cannot be told: a commit file gone, or a write without metrics."""
    for version in range(versions[0], versions[1] + 1):
        try:
            actions = commit_actions(spark, path, version)
        except Exception:  # py4j wraps the FileNotFoundException; unknown counts as changed
            return True
        if _commit_changes_rows(actions, inserts_only=inserts_only):
            return True
    return False


def _changes_data(actions: list[dict]) -> bool:
    """Whether a commit adds or removes a file as a data change (not OPTIMIZE, REORG, VACUUM)."""
    files = [action.get("add") or action.get("remove") for action in actions if "add" in action or "remove" in action]
    return any(f.get("dataChange", True) for f in files)


def _commit_changes_rows(actions: list[dict], *, inserts_only: bool) -> bool:
    if not _changes_data(actions):
        return False
    if not inserts_only:
        return True
    inserted = _rows_inserted_by(actions)
    return inserted is None or inserted > 0


def _rows_inserted_by(actions: list[dict]) -> int | None:
    """The rows one commit inserted (its change feed's ``insert`` rows), from its actions and
    metrics; None when its metrics do not say (a writer with metrics turned off)."""
    if not _changes_data(actions):
        return 0
    info = next((action["commitInfo"] for action in actions if "commitInfo" in action), {})
    operation, metrics = info.get("operation"), info.get("operationMetrics") or {}
    if operation in _NEVER_INSERTING:
        return 0
    inserted = metrics.get("numTargetRowsInserted" if operation == "MERGE" else "numOutputRows")
    return None if inserted is None else int(inserted)


def rows_inserted(spark: SparkSession, path: str, versions: tuple[int, int]) -> int | None:
    """How many rows the commits in ``versions`` (inclusive) inserted — what
    ``batches.read_appended`` returns for them — from their commit files, without a Spark job.
    None when it cannot be told: a commit file gone, or a write without metrics."""
    total = 0
    for version in range(versions[0], versions[1] + 1):
        try:
            inserted = _rows_inserted_by(commit_actions(spark, path, version))
        except Exception:  # py4j wraps the FileNotFoundException; unknown is None
            return None
        if inserted is None:
            return None
        total += inserted
    return total


# The operationMetrics that count the rows a commit added, changed or removed (what its change
# feed holds). A commit with none of them (CREATE TABLE, OPTIMIZE, a new constraint) changed none.
_CHANGED_ROW_METRICS = ("numOutputRows", "numDeletedRows", "numUpdatedRows")
# A MERGE's numOutputRows also counts the unchanged rows it rewrote.
_MERGE_CHANGED_ROW_METRICS = ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted")


def rows_changed(spark: SparkSession, path: str, versions: tuple[int, int], *, enough: int) -> int | None:
    """How many rows the commits in ``versions`` (inclusive) wrote or changed, from their commit
    metrics, without a Spark job; counting stops once it passes ``enough``. None when a commit's
    file is gone (the log's retention removed it): the size is then unknown."""
    total = 0
    for version in range(versions[0], versions[1] + 1):
        try:
            info = commit_info(spark, path, version)
        except Exception:  # py4j wraps the FileNotFoundException; any unreadable commit means unknown
            return None
        metrics = info.get("operationMetrics") or {}
        counted = _MERGE_CHANGED_ROW_METRICS if info.get("operation") == "MERGE" else _CHANGED_ROW_METRICS
        total += sum(int(metrics.get(name, 0)) for name in counted)
        if total > enough:
            break
    return total
