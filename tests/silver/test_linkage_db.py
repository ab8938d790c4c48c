"""The driver's DuckDB for linkage: records arrive from Spark a slice at a time and are kept in
unique-id order; what Splink makes on the shared connection is freed after each use."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from crm_lakehouse.silver import linkage_db

ROWS = [(f"{source}:{number}", f"name {number % 4}", None if number % 3 else f"+3361234{number:04d}",
         [f"n{number % 2}"]) for source in ("eu_web", "cn_app", "us_store") for number in range(7, 0, -1)]
SCHEMA = "unique_id string, name string, phone string, first_name_canonicals array<string>"


def _table(connection, table: str) -> list[tuple]:
    return connection.execute(f"FROM {table}").fetchall()


def test_records_from_spark_arrive_in_slices_and_are_kept_in_unique_id_order(spark):
    records = spark.createDataFrame(ROWS, SCHEMA).repartition(3).localCheckpoint()
    connection = linkage_db.connect()
    sliced = linkage_db.store(connection, "sliced", records, rows_per_slice=4)
    columns = [column.split()[0] for column in SCHEMA.split(", ")]
    whole = linkage_db.store(connection, "whole", pd.DataFrame(ROWS, columns=columns))

    assert len(sliced) == len(whole) == 21
    expected = sorted((uid, name, phone, canonicals) for uid, name, phone, canonicals in ROWS)
    assert _table(connection, "sliced") == _table(connection, "whole") == expected
    # The staging tables of each arrival are gone; only the stored records stay.
    assert sorted(name for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()) == [
        "sliced", "whole"]


def test_a_row_count_from_the_caller_only_sets_the_slices_and_an_empty_frame_stores_an_empty_table(spark):
    records = spark.createDataFrame(ROWS, SCHEMA).localCheckpoint()
    connection = linkage_db.connect()
    # A count that is off (a frame that changed since it was counted) loses and doubles nothing.
    for told in (1, len(ROWS), 1000):
        stored = linkage_db.store(connection, f"told_{told}", records, rows=told, rows_per_slice=5)
        assert _table(connection, stored.table) == sorted(ROWS)
    empty = linkage_db.store(connection, "empty", records.limit(0))
    assert len(empty) == 0
    assert [column for column, *_ in connection.execute("DESCRIBE empty").fetchall()] == [
        "unique_id", "name", "phone", "first_name_canonicals"]


def test_a_column_pandas_left_without_any_value_is_text():
    # An export without phones: every compared field is text, and DuckDB's string functions need it.
    records = linkage_db.as_arrow(pd.DataFrame({"unique_id": ["eu_web:1"], "phone": [None]}))
    assert records.schema.field("phone").type == pa.string()
    stored = linkage_db.stored(records)
    assert stored.connection.execute("SELECT length(phone) FROM records").fetchall() == [(None,)]


def test_what_splink_made_is_dropped_and_the_stored_records_stay():
    connection = linkage_db.connect()
    linkage_db.store(connection, "records", pd.DataFrame({"unique_id": ["a:1", "a:2"]}))
    connection.execute("CREATE TABLE __splink__df_concat_with_tf AS SELECT 1 AS x")
    connection.register("result_df", pd.DataFrame({"x": [1]}))  # what Splink's blocking analysis leaves
    linkage_db.drop_splink_tables(connection)
    assert connection.execute("SELECT table_name FROM duckdb_tables()").fetchall() == [("records",)]
    assert connection.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall() == []
