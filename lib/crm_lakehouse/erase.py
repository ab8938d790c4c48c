"""GDPR / PIPL erasure: forget people in every layer, old files and table logs included.

``erase(spark, settings, ["C…", …])`` takes golden customer ids and:

1. resolves each person: the golden ids merged into theirs (``customer_id_redirects``), every
   source record of theirs (``customer_identity_map``), and the e-mails, phones and name their
   records carried (raw in bronze and standardized in silver) to find unparseable lines;
2. deletes their raw rows from every bronze table (their customer records, the orders and
   interactions that reference them, unparseable lines carrying their e-mail, phone or a name
   no one else has);
3. runs the silver job (so silver has consumed those bronze commits), deletes them from every
   silver table (profile, SCD2 history, identity map, redirects, orders, lines, interactions,
   quarantine), runs the gold job (which removes them from customer_360 and fact_sales and
   recomputes the sales groups they were in) and deletes their churn scores;
4. purges every table: REORG … APPLY (PURGE) where deletion vectors are on; with
   ``maintenance.erasure_purge_immediately`` (the default) VACUUM with no retention and, once
   the old files are gone, a checkpoint and removal of the older commit files, whose per-file
   statistics (min/max) can still hold a value; else VACUUM with the tables' retention;
5. appends one row per person to ``audit.erasures``: a SHA-256 of the id, when, and how many
   records and rows went — no name, e-mail, phone or id in clear.

Every delete is a MERGE against the doomed rows' fingerprints, so the commit records a join
condition, never a value. The resolved plan is saved first (``<checkpoints>/erase/pending.json``)
and removed at the end: a rerun after a crash resumes it, and every step is a no-op once done.
What it cannot reach: the landing files (the source systems' exports; they must erase there
too, or the next delivery brings the person back) and MLflow, which holds no per-person data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from functools import reduce

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType, TimestampType

from crm_lakehouse import storage
from crm_lakehouse.bronze.ingest import CORRUPT_RECORD
from crm_lakehouse.catalog import register_table
from crm_lakehouse.config import Settings, join_path
from crm_lakehouse.delta_writes import append_once, ensure_table, is_delta_table, retry_conflicts
from crm_lakehouse.errors import ConfigError
from crm_lakehouse.gold import contracts as gold_contracts
from crm_lakehouse.silver import contracts as silver_contracts
from crm_lakehouse.tables import TableContract

log = logging.getLogger(__name__)

AUDIT_LAYER, AUDIT_TABLE = "audit", "erasures"
AUDIT_SCHEMA = StructType([
    StructField("request_id", LongType(), False),
    StructField("subject_sha256", StringType(), False),  # sha2(customer_id): answers "was X erased?"
    StructField("requested_at", TimestampType(), False),
    StructField("finished_at", TimestampType(), False),
    StructField("golden_ids", LongType(), False),
    StructField("source_records", LongType(), False),
    StructField("rows_deleted", MapType(StringType(), LongType()), False),  # per table, whole request
    StructField("tables_purged", LongType(), False),
])


@dataclass
class Subject:
    """One person to forget; the lists are what the erasure looks for."""

    requested_id: str
    golden_ids: list[str]
    records: list[tuple[str, str]]          # (source, source_customer_id)
    tokens: list[str]                       # e-mails, phones (raw and E.164), a unique name

    def to_json(self) -> dict:
        return {"requested_id": self.requested_id, "golden_ids": self.golden_ids,
                "records": [list(r) for r in self.records], "tokens": self.tokens}

    @staticmethod
    def from_json(raw: dict) -> Subject:
        return Subject(raw["requested_id"], raw["golden_ids"], [tuple(r) for r in raw["records"]], raw["tokens"])


@dataclass
class ErasureResult:
    request_id: int
    subjects: list[Subject]
    rows_deleted: dict[str, int] = field(default_factory=dict)
    already_erased: list[str] = field(default_factory=list)
    tables_purged: int = 0
    seconds: float = 0.0


def subject_hash(customer_id: str) -> str:
    return hashlib.sha256(customer_id.encode("utf-8")).hexdigest()


def read_ids_file(path: str) -> list[str]:
    """Customer ids from a file, one per line; blank lines and # comments are skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            ids = [line.split("#", 1)[0].strip() for line in handle]
    except OSError as exc:
        raise ConfigError(f"cannot read the ids file: {exc.strerror}", where=path,
                          fix="give a readable file with one customer_id per line") from None
    return [i for i in ids if i]


def erase(spark: SparkSession, settings: Settings, customer_ids: list[str]) -> ErasureResult:
    """Forget every listed golden customer id (see the module docstring for the steps)."""
    started = time.monotonic()
    requested_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    silver = lambda name: settings.table_path("silver", name)  # noqa: E731
    if not is_delta_table(spark, silver("customer_identity_map")):
        raise ConfigError("there is no silver.customer_identity_map to resolve customers with",
                          where=settings.root, fix="point --lakehouse at a lakehouse the daily workflow has built")
    pending_path = join_path(settings.checkpoints, "erase", "pending.json")
    pending = json.loads(storage.read_text(spark, pending_path)) if storage.exists(spark, pending_path) else None
    audit_path = settings.table_path(AUDIT_LAYER, AUDIT_TABLE)
    ensure_table(spark, audit_path, AUDIT_SCHEMA, change_data_feed=False)
    register_table(spark, AUDIT_LAYER, AUDIT_TABLE, audit_path)

    if pending:
        # An earlier run crashed: finish its people too, under its request id.
        request_id = int(pending["request_id"])
        subjects = [Subject.from_json(s) for s in pending["subjects"]]
        wanted = [i for i in dict.fromkeys(customer_ids) if i not in {s.requested_id for s in subjects}]
    else:
        request_id = _next_request_id(spark, audit_path)
        subjects, wanted = [], list(dict.fromkeys(customer_ids))
    erased_before = _already_erased(spark, audit_path, wanted)
    new_subjects = resolve(spark, settings, [i for i in wanted if i not in erased_before])
    subjects += new_subjects
    storage.write_text(spark, pending_path, json.dumps({"request_id": request_id,
                                                       "subjects": [s.to_json() for s in subjects]}))
    result = ErasureResult(request_id=request_id, subjects=subjects, already_erased=sorted(erased_before))
    if subjects:
        _erase_everywhere(spark, settings, subjects, result)
        result.tables_purged = purge(spark, settings)
        _audit(spark, audit_path, result, requested_at)
    storage.delete(spark, pending_path)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def resolve(spark: SparkSession, settings: Settings, customer_ids: list[str]) -> list[Subject]:
    """Each id's person: merged golden ids, source records and identifying values.

    Raises ConfigError naming the ids that no table knows (nothing is erased then).
    """
    if not customer_ids:
        return []
    read = lambda layer, name: spark.read.format("delta").load(settings.table_path(layer, name))  # noqa: E731
    redirects = read("silver", "customer_id_redirects").select("retired_customer_id", "customer_id")
    identity = read("silver", "customer_identity_map")
    history = read("silver", "customers_history")
    known = {r["customer_id"] for r in identity.where(F.col("customer_id").isin(customer_ids)
                                                      ).select("customer_id").distinct().collect()}
    known |= {i for pair in _redirects_touching(redirects, customer_ids) for i in pair if i in customer_ids}
    unknown = [i for i in customer_ids if i not in known]
    if unknown:
        raise ConfigError(f"unknown customer id(s): {', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}",
                          where="silver.customer_identity_map",
                          fix="give golden customer_id values (gold.customer_360.customer_id); nothing was erased")
    subjects = []
    for requested in customer_ids:
        golden = {requested}
        while True:  # follow merges both ways until no new id appears
            grown = golden | {i for pair in _redirects_touching(redirects, sorted(golden)) for i in pair}
            if grown == golden:
                break
            golden = grown
        golden_ids = sorted(golden)
        records = sorted({(r["source"], r["source_customer_id"]) for r in identity.where(
            F.col("customer_id").isin(golden_ids)).select("source", "source_customer_id").collect()})
        subjects.append(Subject(requested, golden_ids, records,
                                _identifying_values(spark, settings, history, golden_ids, records)))
    return subjects


def _redirects_touching(redirects: DataFrame, ids: list[str]) -> list[tuple[str, str]]:
    """The (retired, surviving) id pairs with either side in ``ids``: only those reach the
    driver, never the whole redirects table."""
    rows = redirects.where(F.col("retired_customer_id").isin(ids) | F.col("customer_id").isin(ids)).collect()
    return [(r["retired_customer_id"], r["customer_id"]) for r in rows]


def _identifying_values(spark: SparkSession, settings: Settings, history: DataFrame, golden_ids: list[str],
                        records: list[tuple[str, str]]) -> list[str]:
    """E-mails and phones as silver standardized them and as each source delivered them, and the
    person's names that no other customer has (a shared name would erase strangers' lines)."""
    versions = history.where(F.col("customer_id").isin(golden_ids)).select("email", "phone", "full_name").collect()
    values = {v for row in versions for v in (row["email"], row["phone"]) if v}
    names = {row["full_name"] for row in versions if row["full_name"]}
    for source_name in sorted({s for s, _ in records}):
        source = settings.source(source_name)
        path = settings.table_path("bronze", source.name)
        if not is_delta_table(spark, path):
            continue
        table = spark.read.format("delta").load(path)
        prefix = "customer_" if source.entity == "orders" else ""
        record_id = delivered(table, source, "source_customer_id")
        if record_id is None:
            continue
        contacts = {f: delivered(table, source, prefix + f) for f in ("email", "phone", "full_name")}
        ids = [i for s, i in records if s == source_name]
        rows = table.where(record_id.isin(ids)).select(
            *[c.alias(f) for f, c in contacts.items() if c is not None]).distinct().collect()
        for row in rows:
            found = row.asDict()
            values |= {v.strip() for f, v in found.items() if f != "full_name" and v and v.strip()}
            if found.get("full_name"):
                names.add(found["full_name"].strip())
    if names:
        others = history.where(~F.col("customer_id").isin(golden_ids) & F.col("full_name").isin(sorted(names)))
        shared = {r["full_name"] for r in others.select("full_name").distinct().collect()}
        values |= {n for n in names if n not in shared}
    # Very short values (a two-letter name) would match inside unrelated text.
    return sorted(v for v in values if len(v) >= 2)


def _erase_everywhere(spark: SparkSession, settings: Settings, subjects: list[Subject], result: ErasureResult) -> None:
    from crm_lakehouse.gold.build import build_gold
    from crm_lakehouse.silver.build import build_silver

    golden = sorted({i for s in subjects for i in s.golden_ids})
    records = sorted({r for s in subjects for r in s.records})
    tokens = sorted({t for s in subjects for t in s.tokens})
    for source in settings.sources:
        path = settings.table_path("bronze", source.name)
        if is_delta_table(spark, path):
            table = spark.read.format("delta").load(path)
            result.rows_deleted[f"bronze.{source.name}"] = delete_rows(spark, path, _bronze_rows(table, source, records, tokens))
    # Silver consumes the bronze commits above before its rows go, so its next batch never
    # needs the purged files; gold likewise consumes silver's deletes (and recomputes sales).
    build_silver(spark, settings)
    for contract in silver_contracts.CONTRACTS.values():
        _delete_subjects(spark, settings, silver_contracts.LAYER, contract, golden, records, tokens, result)
    build_gold(spark, settings)
    for contract in (*gold_contracts.CONTRACTS.values(), gold_contracts.CHURN_SCORES):
        _delete_subjects(spark, settings, gold_contracts.LAYER, contract, golden, records, tokens, result)


def _delete_subjects(spark: SparkSession, settings: Settings, layer: str, contract: TableContract, golden: list[str],
                     records: list[tuple[str, str]], tokens: list[str], result: ErasureResult) -> None:
    """Delete the subjects' rows from one table, found as its contract's ``subject_match`` says."""
    path = settings.table_path(layer, contract.name)
    if not contract.subject_match or not is_delta_table(spark, path):
        return
    match = {
        "customer_id": lambda: F.col("customer_id").isin(golden),
        "retired_customer_id": lambda: F.col("retired_customer_id").isin(golden),
        "record": lambda: _pairs_match("source", "source_customer_id", records),
        "customer_record": lambda: _pairs_match("customer_source", "source_customer_id", records),
        "record_l": lambda: _pairs_match("source_l", "source_customer_id_l", records),
        "record_r": lambda: _pairs_match("source_r", "source_customer_id_r", records),
        "raw_record": lambda: _quarantine_match(settings, records, tokens),
    }
    condition = reduce(lambda a, b: a | b, [match[kind]() for kind in contract.subject_match])
    table = spark.read.format("delta").load(path)
    result.rows_deleted[f"{layer}.{contract.name}"] = delete_rows(spark, path, table.where(condition))


def delivered(table: DataFrame, source, field: str) -> Column | None:
    """A canonical field's text as the source's mapping gives it from a bronze row (a column, an
    expression, a value map), trimmed; None when the source does not map it."""
    from crm_lakehouse.mapping import mapped_field

    spec = source.mapping.get(field)
    if spec is None or spec.generated is not None or (spec.value is not None and spec.column is None):
        return None
    value = mapped_field(table, spec)
    return F.trim(value.text if value.text is not None else value.typed.cast("string"))


def _bronze_rows(table: DataFrame, source, records: list[tuple[str, str]], tokens: list[str]) -> DataFrame:
    """The bronze rows that are the person's: their records, rows referencing them, their lines."""
    conditions: list[Column] = []
    record_id = delivered(table, source, "source_customer_id")
    owner = source.name if source.entity == "customers" else source.customer_source  # an orders source's own when inline
    if record_id is not None and source.entity in ("customers", "orders") and owner:
        conditions.append(record_id.isin([i for s, i in records if s == owner]))
    elif record_id is not None and source.entity == "interactions":
        system = delivered(table, source, "customer_system")
        conditions.extend(system.eqNullSafe(F.lit(s)) & record_id.eqNullSafe(F.lit(i)) for s, i in records)
    if CORRUPT_RECORD in table.columns and tokens:
        conditions.append(_contains_any(F.col(CORRUPT_RECORD), tokens))
    if not conditions:
        return table.limit(0)
    return table.where(reduce(lambda a, b: a | b, conditions))


def _pairs_match(source_column: str, id_column: str, records: list[tuple[str, str]]) -> Column:
    pairs = [F.concat_ws("\u0001", F.lit(s), F.lit(i)) for s, i in records]
    if not pairs:
        return F.lit(False)
    return F.concat_ws("\u0001", F.col(source_column), F.col(id_column)).isin(pairs)


def _quarantine_match(settings: Settings, records: list[tuple[str, str]], tokens: list[str]) -> Column:
    """Quarantined records of the person: their id in the delivered record, or their values in a
    line that could not be parsed."""
    conditions = [_contains_any(F.col("raw_record"), tokens)] if tokens else []
    for source in settings.sources:
        id_column = source.column_for("source_customer_id")
        if id_column is None:
            continue  # an expression-mapped id: the person's tokens in the raw record find the row
        owner = source.name if source.entity == "customers" else source.customer_source
        ids = [i for s, i in records if s == owner] if owner else [i for _, i in records]
        if ids:
            raw_id = F.trim(F.get_json_object("raw_record", f"$['{id_column}']"))
            conditions.append((F.col("source") == source.name) & raw_id.isin(ids))
    return reduce(lambda a, b: a | b, conditions) if conditions else F.lit(False)


def _contains_any(column: Column, values: list[str]) -> Column:
    return reduce(lambda a, b: a | b, [column.contains(v) for v in values])


def delete_rows(spark: SparkSession, path: str, doomed: DataFrame) -> int:
    """Delete exactly ``doomed`` (rows of the table at ``path``); returns how many went.

    A MERGE on each row's fingerprint (an MD5 of all its columns): the commit records the join
    condition, never the values being erased, which a DELETE's predicate would keep in the log.
    """
    table = DeltaTable.forPath(spark, path)
    columns = table.toDF().columns
    fingerprint = lambda prefix: "md5(to_json(struct({})))".format(  # noqa: E731
        ", ".join(f"{prefix}`{c}`" for c in columns))
    keys = doomed.select(F.expr(fingerprint("")).alias("_erase_fingerprint")).distinct()
    if keys.isEmpty():
        return 0
    merge = table.alias("t").merge(keys.alias("s"), f"{fingerprint('t.')} = s._erase_fingerprint").whenMatchedDelete()
    # The daily jobs may be writing too: the count comes from the MERGE's own result, since the
    # table's newest commit may already be another writer's.
    outcome = []
    retry_conflicts(lambda: outcome.append(merge.execute().first()), f"erasure in {path}")
    return int(outcome[-1]["num_deleted_rows"])


def purge(spark: SparkSession, settings: Settings) -> int:
    """Remove every file and log entry that no longer belongs to a table's current version.

    Every table, not only those touched now: an old version may hold a record the person had
    before (an earlier update or delete), in its data files, change-data files or log stats.
    """
    from crm_lakehouse.gold.build import build_gold
    from crm_lakehouse.maintain import lakehouse_tables
    from crm_lakehouse.silver.build import build_silver

    now = settings.maintenance.erasure_purge_immediately
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    paths = [path for _, path in lakehouse_tables(spark, settings)]
    for path in paths:
        properties = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}
        if properties.get("delta.enableDeletionVectors", "false").lower() == "true":
            # Rows deleted by vector are still in the data files until rewritten.
            spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
        spark.conf.set(check, "false")
        try:
            # Delta honours only RETAIN 0 HOURS; any other retention comes from the table property.
            DeltaTable.forPath(spark, path).vacuum(0.0 if now else None)
        finally:
            spark.conf.unset(check)
    if now:
        # The REORG and VACUUM commits above change no rows, but silver and gold read their
        # inputs' change feeds from the version after the one they consumed, and as of it: let
        # them consume up to now, so no later batch needs a version whose log entry goes next.
        build_silver(spark, settings)
        build_gold(spark, settings)
        for path in paths:
            _drop_old_log_entries(spark, path)
    return len(paths)


def _drop_old_log_entries(spark: SparkSession, path: str) -> None:
    """Checkpoint the current version, then delete the commits, checksums and checkpoints before
    it — what Delta's own log cleanup does after ``delta.logRetentionDuration``, done now."""
    jvm = spark.sparkContext._jvm
    delta_log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    version = delta_log.update(False, jvm.scala.Option.empty(), jvm.scala.Option.empty()).version()
    delta_log.checkpoint()
    log_dir = join_path(path, "_delta_log")
    last_checkpoint = join_path(log_dir, "_last_checkpoint")
    checkpointed = (json.loads(storage.read_text(spark, last_checkpoint)).get("version")
                    if storage.exists(spark, last_checkpoint) else None)
    if checkpointed != version:
        # Without a checkpoint at this version the older commits are the table; keep them.
        log.warning("no checkpoint at version %s of %s (last is %s); its older log entries are kept",
                    version, path, checkpointed)
        return
    for file in storage.list_files(spark, log_dir):
        name = file.rsplit("/", 1)[-1]
        head = name.split(".", 1)[0]
        if head.isdigit() and int(head) < version:
            storage.delete(spark, join_path(log_dir, name), recursive=False)


def _next_request_id(spark: SparkSession, audit_path: str) -> int:
    latest = spark.read.format("delta").load(audit_path).agg(F.max("request_id")).first()[0]
    return 0 if latest is None else int(latest) + 1


def _already_erased(spark: SparkSession, audit_path: str, customer_ids: list[str]) -> set[str]:
    if not customer_ids:
        return set()
    hashes = {subject_hash(i): i for i in customer_ids}
    found = spark.read.format("delta").load(audit_path).where(F.col("subject_sha256").isin(list(hashes)))
    return {hashes[r["subject_sha256"]] for r in found.select("subject_sha256").distinct().collect()}


def _audit(spark: SparkSession, audit_path: str, result: ErasureResult, requested_at: dt.datetime) -> None:
    finished = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = [(result.request_id, subject_hash(s.requested_id), requested_at, finished, len(s.golden_ids),
             len(s.records), {k: v for k, v in result.rows_deleted.items() if v}, result.tables_purged)
            for s in result.subjects]
    append_once(spark, spark.createDataFrame(rows, AUDIT_SCHEMA), audit_path,
                app_id="crm-lakehouse:erase", version=result.request_id)
