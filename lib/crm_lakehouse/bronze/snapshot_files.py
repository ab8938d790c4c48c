"""The door of a full-snapshot source: a file that cannot be the system's whole state is refused.

A full snapshot (``mode: snapshot``) says "everything not in this file is gone", so an empty
export, a header-only one, or one cut off half-way would delete most customers. Before a
micro-batch is appended, each of its files is compared with the snapshot before it (the newest
file of the previous batch, or the one before it in this batch, by export time): one with no
rows, or with more than ``max_shrink`` fewer rows, is refused with one line naming the file, and
the source stops at it until the file is overwritten (under the same name) with a whole export.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse.config import SourceConfig


def _key(path: str) -> str:
    # The checkpoint writes file:///x, Spark's metadata file:/x, either may be URL-encoded.
    return unquote(urlparse(path).path)


def export_order(spark: SparkSession, source: SourceConfig, files: dict[str, int]) -> list[str]:
    """The files (path -> modification time in ms) oldest export first, the way silver orders them."""
    if source.sequence.source != "file_name":
        return sorted(files, key=lambda f: (files[f], f))
    names = [(f, m.group(1) if (m := re.search(source.sequence.pattern, f.rsplit("/", 1)[-1])) else None)
             for f in files]
    parsed = spark.createDataFrame(names, "file string, text string").select(
        "file", F.try_to_timestamp("text", F.lit(source.sequence.format)).alias("at")).collect()
    at = {r["file"]: r["at"] for r in parsed}
    # A name without an export time sorts last; silver quarantines its rows (has_sequence_number).
    return sorted(files, key=lambda f: (at[f] is None, at[f] or 0, f))


def previous_size(spark: SparkSession, source: SourceConfig, table_path: str, batch_id: int) -> int | None:
    """Rows of the newest file of the previous bronze batch (Delta's file statistics on
    ``_batch_id`` keep this read to that batch's files); None before the first batch."""
    from crm_lakehouse.delta_writes import is_delta_table

    if batch_id == 0 or not is_delta_table(spark, table_path):
        return None
    rows = (spark.read.format("delta").load(table_path).where(F.col("_batch_id") == batch_id - 1)
            .groupBy("_source_file").agg(F.count(F.lit(1)).alias("rows"),
                                         F.max("_file_modified_at").alias("modified")).collect())
    if not rows:
        return None
    modified = {r["_source_file"]: int(r["modified"].timestamp() * 1000) if r["modified"] else 0 for r in rows}
    newest = export_order(spark, source, modified)[-1]
    return next(r["rows"] for r in rows if r["_source_file"] == newest)


def refused_snapshot(spark: SparkSession, source: SourceConfig, batch: DataFrame, files: dict[str, int],
                     table_path: str, batch_id: int) -> tuple[str, str] | None:
    """(file, why) for the first file of the batch that cannot be a full snapshot, else None."""
    counts = {_key(r["_source_file"]): r["rows"] for r in
              batch.groupBy("_source_file").agg(F.count(F.lit(1)).alias("rows")).collect()}
    before = previous_size(spark, source, table_path, batch_id)
    for file in export_order(spark, source, files):
        rows = counts.get(_key(file), 0)
        if rows == 0:
            return file, "a full snapshot with no records"
        if before and rows < before * (1 - source.max_shrink):
            return file, (f"a full snapshot with {rows} records where the one before had {before} "
                          f"({1 - rows / before:.0%} fewer, more than max_shrink {source.max_shrink:g})")
        before = rows
    return None
