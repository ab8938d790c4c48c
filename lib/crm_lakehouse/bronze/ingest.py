"""Bronze: land every configured source's files in its own append-only Delta table, exactly once.

``bronze.<source>`` holds one row per record of the source's files, in the source's own column
names, every value a string as the file had it, plus:

- ``_corrupt_record``: the raw line when the reader could not parse it (CSV and JSON sources);
  the row is kept, never dropped, so silver can quarantine it with a reason;
- lineage: ``_source``, ``_region``, ``_channel``, ``_source_file``, ``_file_modified_at`` (when
  the file arrived in the landing folder), ``_file_row`` (increasing with the row's position in
  its file), ``_ingested_at``, ``_ingest_date`` (the partition column) and ``_batch_id``;
- ``_file_problem``: why the row's whole file does not match the declared columns (a CSV
  header with extra, missing or renamed columns or in another encoding, JSON fields nobody
  declared or required ones absent, a Parquet schema that differs), else null. With the
  source's ``schema_evolution: quarantine`` (default) silver quarantines such rows; with
  ``fail`` the file is refused and the source stops at it with one line naming the file.

Fixed-width and whitespace-separated text is read line by line (in the declared encoding) and
split into the declared columns by position; a line with the wrong number of fields is kept as
an unparseable row.

Each source is a Structured Streaming file source read with ``trigger(availableNow=True)`` and
its own checkpoint, so a file is ingested once however often the job runs. Each micro-batch is
appended with Delta's idempotent-write options (txnAppId, txnVersion): a crash between the Delta
commit and the checkpoint commit cannot append the same batch twice. Sources share nothing, so
``spark.sources_at_once`` of them are ingested side by side.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from crm_lakehouse import storage
from crm_lakehouse.bronze.snapshot_files import refused_snapshot
from crm_lakehouse.catalog import ensure_schema, register_table
from crm_lakehouse.config import TEXT_FORMATS, Settings, SourceConfig, join_path
from crm_lakehouse.errors import SourceError
from crm_lakehouse.spark import with_callers_job_group

log = logging.getLogger(__name__)

CORRUPT_RECORD = "_corrupt_record"
FILE_PROBLEM = "_file_problem"
FILE_MODIFIED_AT = "_file_modified_at"
FILE_ROW = "_file_row"
LINEAGE_COLUMNS = ("_source", "_region", "_channel", "_source_file", FILE_MODIFIED_AT, FILE_ROW, "_ingested_at",
                   "_ingest_date", "_batch_id")
# Text formats are read as one field per line: a separator no export contains.
_LINE = "line"
_NO_SEPARATOR = "\u0000"
_CARRIED_METADATA = "_file_metadata"


@dataclass(frozen=True)
class IngestResult:
    """What one source's ingest did in this run."""

    source: str
    rows_added: int
    batches: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def bronze_schema(source: SourceConfig) -> StructType:
    """All of the source's columns as strings, plus the corrupt-record column for text formats."""
    fields = [StructField(column, StringType(), True) for column in source.columns]
    if source.format != "parquet":
        fields.append(StructField(CORRUPT_RECORD, StringType(), True))
    return StructType(fields)


def read_source_stream(spark: SparkSession, source: SourceConfig, landing: str) -> DataFrame:
    """A streaming DataFrame over the source's landing folder, raw strings plus lineage."""
    raw = _configure(spark.readStream, source).load(landing_path(source, landing))
    return add_lineage(_split_lines(raw, source), source)


def read_source_files(spark: SparkSession, source: SourceConfig, paths: str | list[str]) -> DataFrame:
    """A batch read of some of the source's files exactly as bronze reads them (no lineage)."""
    return _split_lines(_configure(spark.read, source).load(paths), source)


def _configure(reader, source: SourceConfig):
    if source.format in TEXT_FORMATS:
        # Lines as one CSV field: the CSV reader honours the declared encoding, the text one cannot.
        reader = reader.format("csv").schema(StructType([StructField(_LINE, StringType())])) \
            .option("sep", _NO_SEPARATOR).option("quote", "").option("escape", "").option("header", "false") \
            .option("ignoreLeadingWhiteSpace", "false").option("ignoreTrailingWhiteSpace", "false")
        if "encoding" in source.options:
            reader = reader.option("encoding", source.options["encoding"])
        return reader
    reader = reader.format(source.format).schema(bronze_schema(source))
    if source.format in ("csv", "json"):
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT_RECORD)
    for key, value in source.options.items():
        reader = reader.option(key, value)
    return reader


def _split_lines(raw: DataFrame, source: SourceConfig) -> DataFrame:
    """Fixed-width or whitespace-separated lines -> the declared columns (trimmed), and the line
    itself as ``_corrupt_record`` when it does not have the declared shape. Blank lines and, with
    ``header: true``, lines that spell the declared column names are not records."""
    if source.format not in TEXT_FORMATS:
        return raw
    line = F.col(_LINE)
    count = len(source.columns)
    if source.format == "whitespace":
        # The last column takes the rest of the line, so it may hold spaces (a name, a comment).
        fields = F.split(F.trim(line), r"\s+", count)
        values = [F.element_at(fields, i + 1) for i in range(count)]
        malformed = F.size(fields) != count
    else:
        starts = [sum(source.widths[:i]) for i in range(count)]
        values = [F.nullif(F.trim(F.substring(line, start + 1, width)), F.lit(""))
                  for start, width in zip(starts, source.widths)]
        malformed = F.length(F.rtrim(line)) > sum(source.widths)
    columns = [F.when(~malformed, v).alias(c) for v, c in zip(values, source.columns)]
    # The file's metadata is a hidden column of the scan only: carried past this projection by name.
    rows = raw.where(F.trim(line) != "").select(*columns, F.when(malformed, line).alias(CORRUPT_RECORD),
                                                   F.col("_metadata").alias(_CARRIED_METADATA))
    if str(source.options.get("header", "false")).lower() == "true":
        is_header = F.lower(F.concat_ws(" ", *[F.col(f"`{c}`") for c in source.columns])) == \
            " ".join(source.columns).lower()
        rows = rows.where(~F.coalesce(is_header, F.lit(False)))
    return rows


def add_lineage(df: DataFrame, source: SourceConfig) -> DataFrame:
    """Lineage every bronze row carries; ``_batch_id`` is added when the micro-batch is written."""
    metadata = _CARRIED_METADATA if _CARRIED_METADATA in df.columns else "_metadata"
    return df.select(
        *[F.col(f"`{c}`") for c in df.columns if c != _CARRIED_METADATA],
        F.lit(source.name).alias("_source"),
        F.lit(source.region).alias("_region"),
        F.lit(source.channel).alias("_channel"),
        F.col(f"{metadata}.file_path").alias("_source_file"),
        F.col(f"{metadata}.file_modification_time").alias(FILE_MODIFIED_AT),
        F.current_timestamp().alias("_ingested_at"),
    ).withColumn("_ingest_date", F.to_date("_ingested_at"))


def landing_path(source: SourceConfig, landing: str) -> str:
    return join_path(landing, source.path)


def ingest_source(spark: SparkSession, settings: Settings, source: SourceConfig) -> IngestResult:
    """Ingest the files that arrived for one source since its last run."""
    started = time.monotonic()
    folder = landing_path(source, settings.landing)
    if not storage.exists(spark, folder):
        raise SourceError(f"landing folder for source '{source.name}' does not exist", where=folder,
                          fix=f"deliver the source's files there, run `crm-lakehouse generate`, or correct path: in {source.defined_in}")
    table_path = settings.table_path("bronze", source.name)
    checkpoint = join_path(settings.checkpoints, "bronze", source.name)
    if storage.exists(spark, join_path(table_path, "_delta_log")) and not storage.exists(spark, checkpoint):
        raise SourceError(
            f"bronze.{source.name} exists but its checkpoint is gone, so every file would be ingested again",
            where=checkpoint,
            fix=f"restore the checkpoint, or delete {table_path} to rebuild the table from the landing files")
    if not has_unseen_files(spark, folder, checkpoint):
        if storage.exists(spark, join_path(table_path, "_delta_log")):
            register_table(spark, "bronze", source.name, table_path)
        return IngestResult(source=source.name, rows_added=0, batches=0, seconds=round(time.monotonic() - started, 2))
    app_id = f"crm-lakehouse:bronze:{source.name}"
    refused: list[SourceError] = []  # why a batch was refused; the stream reports only "Python Proxy"

    def append_batch(batch: DataFrame, batch_id: int) -> None:
        files = batch_files(spark, checkpoint, batch_id)
        gone = [f for f in files if not storage.exists(spark, f)]
        if gone:
            refused.append(SourceError(
                f"{gone[0].rsplit('/', 1)[-1]} was planned into batch {batch_id} of source '{source.name}' and is gone",
                where=gone[0], fix="put the file back (a batch is retried with exactly its files); to replace a "
                                   "refused file, overwrite it under the same name"))
            raise refused[-1]
        problems = file_problems(spark, source, files)
        if problems and source.schema_evolution == "fail":
            file, problem = sorted(problems.items())[0]
            refused.append(SourceError(
                f"source '{source.name}' refuses {file.rsplit('/', 1)[-1]}: {problem}", where=file,
                fix=f"overwrite the file, same name, with an export that has the declared columns, or declare them "
                    f"in {source.defined_in} (schema_evolution: fail); the other sources are unaffected"))
            raise refused[-1]
        if source.mode == "snapshot":
            # Read once: the size check and the append share it (and the input-row count stays true).
            batch = batch.persist()
            refusal = refused_snapshot(spark, source, batch, batch_file_times(spark, checkpoint, batch_id), table_path,
                                       batch_id)
            if refusal:
                batch.unpersist()
                file, why = refusal
                refused.append(SourceError(
                    f"source '{source.name}' refuses {file.rsplit('/', 1)[-1]}: {why}", where=file,
                    fix="overwrite the file, same name, with the complete export (applied, it would delete the "
                        f"records it lacks), or raise max_shrink in {source.defined_in} if the system really lost "
                        "them; the other sources are unaffected"))
                raise refused[-1]
        # Increasing with the position in the file: the scan reads each file's rows in order.
        (batch.withColumn(FILE_ROW, F.monotonically_increasing_id())
         .withColumn("_batch_id", F.lit(batch_id).cast("long"))
         .withColumn(FILE_PROBLEM, problem_column(problems))
         .write.format("delta").mode("append")
         .option("txnAppId", app_id).option("txnVersion", batch_id)
         .option("mergeSchema", "true")  # tables from before _file_problem existed gain it
         .partitionBy("_ingest_date")
         .save(table_path))
        batch.unpersist()

    stream = read_source_stream(spark, source, settings.landing)
    if needs_column_mapping(source.columns) and not storage.exists(spark, join_path(table_path, "_delta_log")):
        create_mapped_table(spark, table_path, stream.schema)
    query = (stream.writeStream
             .queryName(f"bronze_{source.name}")
             .foreachBatch(append_batch)
             .option("checkpointLocation", checkpoint)
             .trigger(availableNow=True)
             .start())
    try:
        query.awaitTermination()
    except Exception as exc:  # the stream's failure arrives wrapped; keep its first line
        if refused:
            raise refused[-1] from None
        raise SourceError(f"ingest of source '{source.name}' failed: {_first_line(exc)}", where=folder,
                          fix="inspect or remove the unreadable file; the other sources are unaffected") from None
    progress = query.recentProgress
    rows = sum(p.get("numInputRows", 0) for p in progress if p.get("batchId") is not None)
    batches = len({p["batchId"] for p in progress if p.get("numInputRows", 0) > 0})
    if storage.exists(spark, join_path(table_path, "_delta_log")):
        register_table(spark, "bronze", source.name, table_path)
    return IngestResult(source=source.name, rows_added=int(rows), batches=batches,
                        seconds=round(time.monotonic() - started, 2))


# Characters Delta allows in column names only with column mapping (exports name columns
# "Customer ID", "Country/Region" is fine, "Amount (EUR)" is not).
_MAPPED_CHARACTERS = set(" ,;{}()\n\t=")


def needs_column_mapping(columns: tuple[str, ...]) -> bool:
    return any(ch in _MAPPED_CHARACTERS for column in columns for ch in column)


def create_mapped_table(spark: SparkSession, table_path: str, schema: StructType) -> None:
    """Create the bronze table with Delta column mapping, so it keeps the export's own column
    names even where they hold spaces or brackets. Readers need column mapping support (Spark,
    delta-rs, DuckDB have it); tables of sources with plain names are created without it."""
    from delta.tables import DeltaTable

    extra = [StructField("_batch_id", LongType()), StructField(FILE_PROBLEM, StringType()),
             StructField(FILE_ROW, LongType())]
    (DeltaTable.createIfNotExists(spark).location(table_path).addColumns(StructType(schema.fields + extra))
     .partitionedBy("_ingest_date").property("delta.columnMapping.mode", "name")
     .property("delta.enableChangeDataFeed", "true").execute())


def has_unseen_files(spark: SparkSession, folder: str, checkpoint: str) -> bool:
    """Whether the source's stream could find work: False only when every batch it planned is
    committed and every file it would read in ``folder`` is in its checkpoint's file log.

    Starting a stream costs about a second even when it finds nothing; a daily run in which most
    sources delivered nothing pays that per source. Files the file source never reads (names
    starting with "." or "_", except partition folders such as ``_x=1``) are left out on both
    sides; a glob in the path always runs the stream.
    """
    if any(ch in folder for ch in "*?[{"):
        return True
    planned, committed = (_batch_ids(spark, join_path(checkpoint, part)) for part in ("offsets", "commits"))
    if not planned or max(planned) != max(committed, default=-1):
        return True  # a first run, or a batch planned and not committed: the stream reruns it
    log_folder = join_path(checkpoint, "sources", "0")
    seen = {_location(entry["path"]) for name in storage.list_files(spark, log_folder)
            if name.split(".")[0].isdigit() and not name.endswith(".tmp")
            for entry in file_log_entries(spark, join_path(log_folder, name))}
    return any(_location(path) not in seen for relative, path in storage.list_files_recursively(spark, folder)
               if _readable(relative))


def _batch_ids(spark: SparkSession, folder: str) -> list[int]:
    return [int(name) for name in storage.list_files(spark, folder) if name.isdigit()]


def _readable(relative: str) -> bool:
    """Whether Spark's file index lists the file (its hidden-name rules, per path component)."""
    parts = [part for part in relative.split("/") if part]
    return not any(part.startswith(".") or (part.startswith("_") and "=" not in part) or part.endswith("._COPYING_")
                   for part in parts)


def _location(path: str) -> tuple[str, str, str]:
    # _file_key with the scheme and bucket kept: two buckets may hold the same key.
    parsed = urlparse(path)
    return parsed.scheme or "file", parsed.netloc, _file_key(path)


def file_log_entries(spark: SparkSession, log_file: str) -> list[dict]:
    """The entries ({"path", "timestamp", "batchId"}) of one file of the file source's log in a
    stream checkpoint (``sources/0/<batch>`` or a ``.compact`` file); [] when it is missing.
    The log is the stream's own record of what it read, so nothing here scans the data."""
    if not storage.exists(spark, log_file):
        return []
    return [json.loads(line) for line in storage.read_text(spark, log_file).splitlines()[1:] if line.strip()]


def batch_files(spark: SparkSession, checkpoint: str, batch_id: int) -> list[str]:
    """The files of a streaming micro-batch (logged before the batch runs)."""
    return [entry["path"] for entry in file_log_entries(spark, join_path(checkpoint, "sources", "0", str(batch_id)))]


def batch_file_times(spark: SparkSession, checkpoint: str, batch_id: int) -> dict[str, int]:
    """Path -> modification time (ms) of a micro-batch's files."""
    return {entry["path"]: int(entry.get("timestamp", 0))
            for entry in file_log_entries(spark, join_path(checkpoint, "sources", "0", str(batch_id)))}


def file_problems(spark: SparkSession, source: SourceConfig, files: list[str]) -> dict[str, str]:
    """For each file whose columns differ from the declared ones, what differs (path -> text)."""
    declared = list(source.columns)
    found: dict[str, list[str]] = {}
    if not files or source.format in TEXT_FORMATS:
        return {}  # positional text: a line of another shape is an unparseable row instead
    if source.format == "csv":
        if str(source.options.get("header", "false")).lower() != "true":
            return {}  # no header to compare: columns are positional
        options = {k: v for k, v in source.options.items() if k != "header"}
        for file in files:
            header = csv_header(spark, source, file)
            if header is None:  # a line Python cannot read as Spark would: ask Spark (one small job)
                first = spark.read.options(**options).option("header", "false").csv(file).limit(1).collect()
                header = [str(v or "") for v in first[0]] if first else None
            if header is not None:
                found[file] = [v.strip().lstrip("\ufeff") for v in header]
    elif source.format == "json":
        keys = (spark.read.text(files).select(F.col("_metadata.file_path").alias("file"),
                                              F.explode(F.expr("json_object_keys(value)")).alias("key"))
                .distinct().collect())
        for row in keys:
            found.setdefault(_file_key(row["file"]), []).append(row["key"])
        found = {file: found.get(_file_key(file), []) for file in files if _file_key(file) in found}
    else:
        for file in files:
            found[file] = spark.read.format(source.format).load(file).columns
    problems = {}
    required = set(source.primary_key) | ({source.cdc.operation_column, source.cdc.sequence_column} if source.cdc else set())
    for file, columns in found.items():
        extra = [c for c in columns if c not in declared]
        missing = [c for c in declared if c not in columns]
        if source.format == "json":  # JSON exports leave out empty fields: only required ones must be there
            missing = [c for c in missing if c in required]
        if extra or missing or (source.format == "csv" and columns != declared):
            what = "; ".join(part for part in (
                f"unexpected {_names(extra)}" if extra else "", f"missing {_names(missing)}" if missing else "",
                "same columns in another order" if not extra and not missing else "") if part)
            problems[file] = f"columns differ from the declared ones: {what}"
    return problems


# A header longer than this is not a header: Spark reads such a file's first line instead.
_HEADER_BYTES = 65536
_COMPRESSED = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst", ".zip")


def csv_header(spark: SparkSession, source: SourceConfig, file: str) -> list[str] | None:
    """The first line of a CSV file split into fields as Spark's reader splits it, read on the
    driver (a Spark job per file was most of a small batch's bronze time); None where only Spark
    can say: a compressed file, a separator, line separator or comment option Python's csv does
    not share, a blank first line, a quote spanning lines, a charset Python lacks or bytes invalid
    in it (Spark decodes those with replacement characters)."""
    import codecs
    import csv

    options = {k.lower(): str(v) for k, v in source.options.items()}
    separator = options.get("sep", options.get("delimiter", ","))
    quote, escape = options.get("quote", '"'), options.get("escape", "\\")
    if (file.lower().endswith(_COMPRESSED) or len(separator) != 1 or len(quote) > 1 or len(escape) > 1
            or "linesep" in options or "comment" in options):
        return None
    head = storage.read_head(spark, file, _HEADER_BYTES)
    try:
        text = codecs.getincrementaldecoder(options.get("encoding", options.get("charset", "UTF-8")))("strict") \
            .decode(head, final=len(head) < _HEADER_BYTES)
    except (LookupError, UnicodeDecodeError):
        return None
    line, newline, _ = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").partition("\n")
    if (not newline and len(head) >= _HEADER_BYTES) or not line.strip() or (quote and line.count(quote) % 2):
        return None
    return next(csv.reader([line], delimiter=separator, quotechar=quote or None, escapechar=escape or None,
                           doublequote=False, quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE))


def _names(columns: list[str]) -> str:
    # A binary file's "header" is junk: keep the message short and printable.
    shown = [c if len(c) <= 40 and c.isprintable() else repr(c[:40]) for c in columns[:5]]
    return ", ".join(shown) + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")


def problem_column(problems: dict[str, str]):
    """``_file_problem`` per row: the problem of its file (matched by path, however encoded)."""
    if not problems:
        return F.lit(None).cast("string")
    by_path = F.create_map(*[F.lit(v) for file, problem in problems.items() for v in (_file_key(file), problem)])
    return F.element_at(by_path, F.url_decode(F.expr("parse_url(_source_file, 'PATH')")))


def _file_key(path: str) -> str:
    # The checkpoint writes file:///x, Spark's metadata file:/x, either may be URL-encoded.
    return unquote(urlparse(path).path)


def ingest_all(spark: SparkSession, settings: Settings, *, only: list[str] | None = None) -> list[IngestResult]:
    """Ingest every configured source (or those named); one source's failure never stops the others."""
    if not storage.exists(spark, settings.landing):
        raise SourceError("landing folder does not exist", where=settings.landing,
                          fix="run `crm-lakehouse generate --out <landing>` or point --landing at the CRM exports")
    sources = [settings.source(name) for name in only] if only else list(settings.sources)

    def ingest(source: SourceConfig) -> IngestResult:
        try:
            return ingest_source(spark, settings, source)
        except SourceError as exc:
            log.error("%s", exc)
            return IngestResult(source=source.name, rows_added=0, batches=0, seconds=0.0, error=str(exc))

    # Each source is its own stream, checkpoint and table, so sources run side by side (in the
    # order configured, results in that order); the schema every table registers into is made
    # first, not by whichever source gets there.
    ensure_schema(spark, "bronze")
    with ThreadPoolExecutor(max_workers=settings.spark.sources_at_once) as pool:
        return list(pool.map(with_callers_job_group(spark, ingest), sources))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("==="):
            return line[:300]
    return type(exc).__name__


def bronze_summary(spark: SparkSession, settings: Settings) -> list[dict]:
    """Rows and unparseable rows per bronze table.

    One small aggregate per table, a few at a time: a single query over the union of all
    tables was measured 4x slower here (its plan has one Delta scan per source).
    """
    def count(source: SourceConfig) -> dict:
        path = settings.table_path("bronze", source.name)
        rows = corrupt = 0
        if storage.exists(spark, join_path(path, "_delta_log")):
            table = spark.read.format("delta").load(path)
            is_corrupt = F.col(CORRUPT_RECORD).isNotNull() if CORRUPT_RECORD in table.columns else F.lit(False)
            result = table.agg(F.count(F.lit(1)).alias("rows"), F.sum(is_corrupt.cast("int")).alias("corrupt")).first()
            rows, corrupt = int(result["rows"]), int(result["corrupt"] or 0)
        return {"source": source.name, "region": source.region, "channel": source.channel, "entity": source.entity,
                "format": source.format, "bronze_rows": rows, "unparseable_rows": corrupt}

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(count, settings.sources))
