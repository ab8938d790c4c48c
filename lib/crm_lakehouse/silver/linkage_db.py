"""The driver's DuckDB for record linkage: one connection of bounded memory that holds the linkage
records as tables, for training, scoring and counting pairs on Splink's DuckDB backend.

Records arrive from Spark a slice at a time, so the driver's Python process never holds them all:
DuckDB keeps them within its memory limit and spills the rest to its temp folder. Collected whole
(as Arrow), a first load's records were what grew the driver's peak with the data: 1,178 MiB at
scale 3 against 921 at scale 1 (docs/development.md).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass

from crm_lakehouse.silver.linkage_fields import UNIQUE_ID

# DuckDB's share of the driver's memory unless the config says otherwise
# (``silver.identity.probabilistic.scoring_memory``): it spills to disk beyond this, where by default it would
# take 80% of the machine beside Spark's JVM (at scale 1 the driver was killed for memory). A
# first load's scoring and pair count fill whatever they are given (4 GB at scale 3). Bounded
# this low, they reach the bound already at scale 1, so the driver's peak stays nearly level as
# the data grows; at scale 1 the identity step took 23.2 s with it against 21.9 s with 4 GB
# (bench/identity_step.py; docs/development.md).
DUCKDB_MEMORY = "512MB"
# Records per slice on their way from Spark: about 14 MiB of Arrow.
ROWS_PER_SLICE = 50_000
# Splink's names for the tables it makes: dropped after each use of a shared connection.
SPLINK_PREFIX = "__splink__"


@dataclass(frozen=True)
class StoredRecords:
    """Linkage records as a table of a DuckDB connection, in unique-id order."""

    connection: object
    table: str
    rows: int

    def __len__(self) -> int:
        return self.rows


def connect(memory: str = DUCKDB_MEMORY):
    """A DuckDB connection that uses at most ``memory`` and spills beyond it to a temp folder."""
    import duckdb

    return duckdb.connect(config={"memory_limit": memory, "temp_directory": tempfile.gettempdir()})


def as_arrow(records):
    """Linkage records as an Arrow table (pandas frames are converted; a column pandas left with
    no value at all is typed as text, as every compared field is)."""
    import pyarrow as pa

    if not isinstance(records, pa.Table):
        records = pa.Table.from_pandas(records, preserve_index=False)
    for index, column in enumerate(records.schema):
        if pa.types.is_null(column.type):
            records = records.set_column(index, column.name, records.column(index).cast(pa.string()))
    return records


def store(connection, table: str, records, *, rows: int | None = None,
          rows_per_slice: int = ROWS_PER_SLICE) -> StoredRecords:
    """``records`` (a Spark DataFrame, an Arrow table or a pandas frame) as ``table`` of
    ``connection``, in unique-id order so that the same records train the same model whichever
    partitions delivered them. A Spark DataFrame is read once per slice (and once to count it
    unless ``rows`` says how many): give it materialised."""
    arriving = f"{table}__arriving"
    for number, part in enumerate(_slices(records, rows, rows_per_slice)):
        connection.register("arriving_slice", part)
        connection.execute(f"CREATE OR REPLACE TABLE {arriving} AS FROM arriving_slice" if number == 0
                           else f"INSERT INTO {arriving} FROM arriving_slice")
        connection.unregister("arriving_slice")
        del part
    connection.execute(f"CREATE OR REPLACE TABLE {table} AS FROM {arriving} ORDER BY {UNIQUE_ID}")
    connection.execute(f"DROP TABLE {arriving}")
    return StoredRecords(connection, table, connection.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def stored(records, *, memory: str = DUCKDB_MEMORY, table: str = "records",
           connection=None) -> StoredRecords:
    """``records`` as they are when already stored; otherwise stored as ``table`` of
    ``connection`` (a new one of ``memory`` when none is given)."""
    if isinstance(records, StoredRecords):
        return records
    return store(connection if connection is not None else connect(memory), table, records)


def _slices(records, rows: int | None, rows_per_slice: int):
    """Arrow tables that together hold ``records``: a Spark DataFrame split by a hash of the
    unique id into slices of about ``rows_per_slice``."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    if not isinstance(records, DataFrame):
        yield as_arrow(records)
        return
    count = max(1, math.ceil((records.count() if rows is None else rows) / rows_per_slice))
    bucket = F.pmod(F.xxhash64(UNIQUE_ID), F.lit(count))
    for number in range(count):
        part = (records if count == 1 else records.where(bucket == number)).toArrow()
        yield as_arrow(part)
        del part


def drop_splink_tables(connection) -> None:
    """Free what Splink made on ``connection`` (its intermediate tables hold a first load's
    millions of pairs) and every view it registered (its blocking analysis leaves one, not
    named as its tables are), keeping the stored records."""
    for (name,) in connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall():
        connection.unregister(name)
        connection.execute(f'DROP VIEW IF EXISTS "{name}"')
    for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall():
        if name.startswith(SPLINK_PREFIX):
            connection.execute(f'DROP TABLE "{name}"')
