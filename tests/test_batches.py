"""Batch plans' table reads: pinned to the plan's versions, opened only when a step reads them."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from py4j.protocol import Py4JJavaError

from crm_lakehouse.batches import TablesAsOf, table_version

SCHEMA = "id int, name string"


def test_tables_as_of_read_the_planned_version_even_after_later_commits(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([(1, "a")], SCHEMA).write.format("delta").save(path)
    spark.createDataFrame([(2, "b")], SCHEMA).write.format("delta").mode("append").save(path)
    tables = TablesAsOf(spark, paths={"t": path, "new": str(tmp_path / "new")}, versions={"t": 0},
                        schemas={"t": SCHEMA, "new": spark.createDataFrame([], SCHEMA).schema})
    spark.createDataFrame([(3, "c")], SCHEMA).write.format("delta").mode("append").save(path)

    assert table_version(spark, path) == 2
    assert_df_equality(tables["t"], spark.createDataFrame([(1, "a")], SCHEMA), ignore_nullable=True)
    # Not in the plan's versions: the table did not exist when the batch was planned.
    assert tables["new"].count() == 0 and tables["new"].columns == ["id", "name"]
    assert sorted(tables) == ["new", "t"] and len(tables) == 2
    with pytest.raises(KeyError):
        tables["other"]


def test_a_table_the_batch_never_reads_is_never_opened(spark, tmp_path):
    # Version 5 of a folder without a table cannot be opened: only reading it fails.
    tables = TablesAsOf(spark, paths={"gone": str(tmp_path / "gone")}, versions={"gone": 5},
                        schemas={"gone": SCHEMA})
    with pytest.raises(Py4JJavaError, match="_delta_log does not exist"):
        tables["gone"]
