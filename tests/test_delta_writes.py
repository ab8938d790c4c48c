"""Delta write patterns: replayed batches are skipped, the next batch is not, contracts are enforced."""

from __future__ import annotations

from pathlib import Path

import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable
from pyspark.sql.types import LongType, StringType, StructField, StructType

from crm_lakehouse.batches import read_appended
from crm_lakehouse.delta_writes import (
    TXN_APP_ID, TXN_VERSION, append_once, changes_rows, commit_info, ensure_table, rows_changed, rows_inserted, upsert,
)

SCHEMA = StructType([StructField("id", LongType(), False), StructField("name", StringType(), True),
                     StructField("amount", LongType(), True)])


@pytest.fixture
def table_path(spark, tmp_path):
    path = str(tmp_path / "t")
    ensure_table(spark, path, SCHEMA, constraints={"amount_not_negative": "amount >= 0"})
    return path


def rows(spark, data):
    return spark.createDataFrame(data, SCHEMA)


def test_replayed_merge_batch_is_skipped_and_the_next_one_applies(spark, table_path):
    append_once(spark, rows(spark, [(4, "dee", 2)]), table_path, app_id="seed", version=0)  # not a first load
    first = upsert(spark, rows(spark, [(1, "ann", 5), (2, "bob", 7)]), table_path, ["id"], app_id="silver:t", version=0)
    assert not first.skipped and first.metrics["numTargetRowsInserted"] == "2"
    assert spark.conf.get(TXN_APP_ID, None) is None and spark.conf.get(TXN_VERSION, None) is None

    replay = upsert(spark, rows(spark, [(1, "ann", 5), (2, "BOB", 99)]), table_path, ["id"], app_id="silver:t", version=0)
    assert replay.skipped and replay.table_version == first.table_version

    second = upsert(spark, rows(spark, [(2, "bobby", 8), (3, "cy", 1)]), table_path, ["id"], app_id="silver:t", version=1)
    assert not second.skipped
    assert second.metrics["numTargetRowsUpdated"] == "1" and second.metrics["numTargetRowsInserted"] == "1"
    assert_df_equality(spark.read.format("delta").load(table_path),
                       rows(spark, [(1, "ann", 5), (2, "bobby", 8), (3, "cy", 1), (4, "dee", 2)]),
                       ignore_row_order=True, ignore_nullable=True)


def test_a_first_load_appends_what_a_merge_would_insert_and_its_replay_is_skipped(spark, table_path, tmp_path):
    # An int id and a delete marker: the append casts to the table's long and keeps what insert_when keeps.
    source = spark.createDataFrame([(1, "ann", 5, False), (2, "bob", 7, True), (3, "cy", 0, False)],
                                   "id int, name string, amount long, _delete boolean")
    conditions = {"delete_when": "s._delete", "insert_when": "NOT s._delete"}
    first = upsert(spark, source, table_path, ["id"], app_id="gold:t", version=0, **conditions)
    assert not first.skipped and commit_info(spark, table_path, first.table_version)["operation"] == "WRITE"
    assert first.metrics["numOutputRows"] == "2" and first.operation == "WRITE"
    # The same source MERGEd (no app id: the MERGE path) into another empty table: the same rows.
    merged = str(tmp_path / "merged")
    ensure_table(spark, merged, SCHEMA, constraints={"amount_not_negative": "amount >= 0"})
    assert commit_info(spark, merged, upsert(spark, source, merged, ["id"], **conditions).table_version)["operation"] == "MERGE"
    assert_df_equality(spark.read.format("delta").load(table_path), spark.read.format("delta").load(merged),
                       ignore_row_order=True)
    assert sorted(r["id"] for r in spark.read.format("delta").load(table_path).collect()) == [1, 3]
    # What the next layer reads of it: the change feed's inserts, counted from the commit too.
    assert read_appended(spark, table_path, (1, 1)).count() == rows_inserted(spark, table_path, (1, 1)) == 2

    replay = upsert(spark, source, table_path, ["id"], app_id="gold:t", version=0, **conditions)
    assert replay.skipped and spark.read.format("delta").load(table_path).count() == 2
    second = upsert(spark, rows(spark, [(1, "anne", 6)]), table_path, ["id"], app_id="gold:t", version=1)
    assert commit_info(spark, table_path, second.table_version)["operation"] == "MERGE"
    assert second.metrics["numTargetRowsUpdated"] == "1" and second.operation == "MERGE"


def test_write_metrics_are_the_commits_own_as_describe_history_shows_them(spark, table_path):
    append_once(spark, rows(spark, [(4, "dee", 2)]), table_path, app_id="seed", version=0)  # not a first load
    merged = upsert(spark, rows(spark, [(1, "ann", 5), (2, "bob", 7)]), table_path, ["id"], app_id="m", version=0)
    appended = append_once(spark, rows(spark, [(3, "cy", 1)]), table_path, app_id="log", version=0)
    history = {r["version"]: r for r in DeltaTable.forPath(spark, table_path).history().collect()}
    for result, operation in ((merged, "MERGE"), (appended, "WRITE")):
        assert history[result.table_version]["operation"] == operation
        assert result.metrics == history[result.table_version]["operationMetrics"]
        assert commit_info(spark, table_path, result.table_version)["operation"] == operation
    assert merged.metrics["numTargetRowsInserted"] == "2" and appended.metrics["numOutputRows"] == "1"


def test_rows_changed_counts_what_each_commit_changed_from_its_metrics(spark, table_path):
    append_once(spark, rows(spark, [(1, "ann", 5), (2, "bob", 7), (3, "cy", 1)]), table_path, app_id="a", version=0)
    # Updates one row, inserts two, and rewrites the file holding the two rows it leaves alone.
    upsert(spark, rows(spark, [(1, "anne", 6), (4, "dee", 2), (5, "eve", 3)]), table_path, ["id"], app_id="a", version=1)
    DeltaTable.forPath(spark, table_path).delete("id = 5")

    assert rows_changed(spark, table_path, (0, 0), enough=100) == 0  # CREATE TABLE
    assert rows_changed(spark, table_path, (1, 1), enough=100) == 3
    assert rows_changed(spark, table_path, (2, 2), enough=100) == 3
    assert rows_changed(spark, table_path, (0, 3), enough=100) == 7
    assert rows_changed(spark, table_path, (1, 3), enough=2) == 3  # stops once past enough


def test_rows_changed_is_unknown_once_a_commit_file_is_gone(spark, table_path):
    append_once(spark, rows(spark, [(1, "ann", 5)]), table_path, app_id="a", version=0)
    append_once(spark, rows(spark, [(2, "bob", 7)]), table_path, app_id="a", version=1)
    (Path(table_path) / "_delta_log" / f"{1:020d}.json").unlink()
    assert rows_changed(spark, table_path, (1, 2), enough=100) is None
    assert rows_changed(spark, table_path, (2, 2), enough=100) == 1


def test_changes_rows_tells_maintenance_and_deletes_from_writes(spark, table_path):
    append_once(spark, rows(spark, [(1, "ann", 5), (2, "bob", 7)]), table_path, app_id="a", version=0)   # 1
    append_once(spark, rows(spark, [(3, "cy", 1)]), table_path, app_id="a", version=1)                  # 2
    spark.sql(f"OPTIMIZE delta.`{table_path}`")                                                         # 3
    DeltaTable.forPath(spark, table_path).delete("id = 3")                                              # 4
    only_deletes = spark.createDataFrame([(1,)], "id long")
    DeltaTable.forPath(spark, table_path).alias("t").merge(only_deletes.alias("s"), "t.id = s.id") \
        .whenMatchedDelete().execute()                                                                  # 5
    upsert(spark, rows(spark, [(2, "bobby", 8)]), table_path, ["id"], app_id="a", version=2)           # 6: update only
    upsert(spark, rows(spark, [(4, "dee", 2)]), table_path, ["id"], app_id="a", version=3)             # 7: insert
    assert [changes_rows(spark, table_path, (v, v)) for v in range(8)] == [False, True, True, False, True, True, True, True]
    assert [changes_rows(spark, table_path, (v, v), inserts_only=True) for v in range(8)] == \
        [False, True, True, False, False, False, False, True]
    assert changes_rows(spark, table_path, (3, 6), inserts_only=True) is False
    assert changes_rows(spark, table_path, (3, 7), inserts_only=True) is True
    (Path(table_path) / "_delta_log" / f"{3:020d}.json").unlink()
    assert changes_rows(spark, table_path, (3, 3)) is True  # unknown counts as changed


def test_rows_inserted_is_what_the_change_feed_inserts_without_a_job(spark, table_path):
    append_once(spark, rows(spark, [(1, "ann", 5), (2, "bob", 7)]), table_path, app_id="a", version=0)   # 1
    spark.sql(f"OPTIMIZE delta.`{table_path}`")                                                         # 2
    DeltaTable.forPath(spark, table_path).delete("id = 2")                                              # 3
    upsert(spark, rows(spark, [(1, "anne", 6)]), table_path, ["id"], app_id="a", version=1)            # 4: update only
    upsert(spark, rows(spark, [(1, "ann", 5), (3, "cy", 1), (4, "dee", 2)]), table_path, ["id"],
           app_id="a", version=2)                                                                       # 5: 1 update, 2 inserts
    counted = [rows_inserted(spark, table_path, (v, v)) for v in range(6)]
    assert counted == [0, 2, 0, 0, 0, 2]
    assert counted == [read_appended(spark, table_path, (v, v)).count() for v in range(6)]
    assert rows_inserted(spark, table_path, (1, 5)) == read_appended(spark, table_path, (1, 5)).count() == 4

    spark.conf.set("spark.databricks.delta.history.metricsEnabled", "false")
    try:
        append_once(spark, rows(spark, [(5, "eve", 3)]), table_path, app_id="a", version=3)             # 6: no metrics
    finally:
        spark.conf.unset("spark.databricks.delta.history.metricsEnabled")
    assert rows_inserted(spark, table_path, (5, 6)) is None  # unknown, not 0: the caller counts the rows
    (Path(table_path) / "_delta_log" / f"{1:020d}.json").unlink()
    assert rows_inserted(spark, table_path, (1, 1)) is None


def test_a_merge_with_another_app_id_is_not_confused_with_earlier_ones(spark, table_path):
    upsert(spark, rows(spark, [(1, "ann", 5)]), table_path, ["id"], app_id="silver:a", version=3)
    other = upsert(spark, rows(spark, [(1, "anne", 6)]), table_path, ["id"], app_id="silver:b", version=3)
    assert not other.skipped
    assert spark.read.format("delta").load(table_path).first()["name"] == "anne"


def test_merge_can_delete_matched_rows(spark, table_path):
    upsert(spark, rows(spark, [(1, "ann", 5), (2, "bob", 7)]), table_path, ["id"], app_id="x", version=0)
    src = spark.createDataFrame([(1, "ann", 5, True)], "id long, name string, amount long, is_delete boolean")
    result = upsert(spark, src.drop("is_delete").join(src.select("id", "is_delete"), "id"), table_path, ["id"],
                    app_id="x", version=1, delete_when="s.is_delete")
    assert result.metrics["numTargetRowsDeleted"] == "1"
    assert [r["id"] for r in spark.read.format("delta").load(table_path).collect()] == [2]


def test_append_once_skips_a_replayed_batch(spark, table_path):
    assert not append_once(spark, rows(spark, [(9, "z", 1)]), table_path, app_id="log", version=0).skipped
    assert append_once(spark, rows(spark, [(9, "z", 1)]), table_path, app_id="log", version=0).skipped
    assert spark.read.format("delta").load(table_path).count() == 1


def test_table_contract_enforces_not_null_and_checks_and_turns_on_the_change_feed(spark, table_path):
    with pytest.raises(Exception, match="(?i)constraint|violat"):
        rows(spark, [(1, "neg", -1)]).write.format("delta").mode("append").save(table_path)
    with pytest.raises(Exception, match="(?i)null"):
        spark.createDataFrame([(None, "no id", 1)], "id long, name string, amount long") \
            .write.format("delta").mode("append").save(table_path)
    properties = DeltaTable.forPath(spark, table_path).detail().first()["properties"]
    assert properties.get("delta.enableChangeDataFeed") == "true"
    ensure_table(spark, table_path, SCHEMA, constraints={"amount_not_negative": "amount >= 0"})  # idempotent


def test_column_comments_are_set_at_creation_and_rewritten_only_when_they_change(spark, tmp_path):
    path = str(tmp_path / "commented")

    def comments() -> dict:
        return {f.name: f.metadata.get("comment") for f in spark.read.format("delta").load(path).schema.fields}

    def version() -> int:
        return DeltaTable.forPath(spark, path).history(1).first()["version"]

    ensure_table(spark, path, SCHEMA, comments={"id": "one row per id", "amount": "in cents; a customer's own"})
    assert comments() == {"id": "one row per id", "name": None, "amount": "in cents; a customer's own"}
    created = version()
    ensure_table(spark, path, SCHEMA, comments={"id": "one row per id", "amount": "in cents; a customer's own"})
    assert version() == created  # nothing changed, nothing committed
    ensure_table(spark, path, SCHEMA, comments={"id": "one row per id", "amount": "net of returns, \\ in cents",
                                                "name": "as the source wrote it"})
    assert comments() == {"id": "one row per id", "name": "as the source wrote it", "amount": "net of returns, \\ in cents"}
    assert version() == created + 2  # one commit per changed comment
    assert spark.sql(f"DESCRIBE TABLE delta.`{path}`").where("col_name = 'amount'").first()["comment"] \
        == "net of returns, \\ in cents"


def test_a_merge_told_where_its_matches_lie_looks_for_them_only_there(spark, table_path):
    rows(spark, [(1, "ann", 1), (2, "bob", 2)]).coalesce(1).write.format("delta").mode("append").save(table_path)
    rows(spark, [(3, "cy", 100), (4, "dee", 101)]).coalesce(1).write.format("delta").mode("append").save(table_path)

    inside = upsert(spark, rows(spark, [(1, "anne", 1)]), table_path, ["id"], app_id="x", version=0,
                    target_within="t.amount IN (1, 2)")
    assert (inside.metrics["numTargetRowsUpdated"], inside.metrics["numTargetRowsInserted"]) == ("1", "0")
    # The restriction is part of the match, which is what lets Delta skip the other files by
    # their statistics: a row outside it is not found, so the caller must be sure (as gold is of
    # the dates a batch touched).
    outside = upsert(spark, rows(spark, [(3, "cyd", 100)]), table_path, ["id"], app_id="x", version=1,
                     target_within="t.amount IN (1, 2)")
    assert outside.metrics["numTargetRowsInserted"] == "1"
    assert sorted((r["id"], r["name"]) for r in spark.read.format("delta").load(table_path).collect()) == [
        (1, "anne"), (2, "bob"), (3, "cy"), (3, "cyd"), (4, "dee")]


def test_a_property_a_contract_gained_reaches_a_table_made_before_it(spark, table_path):
    from crm_lakehouse.tables import DELETION_VECTORS

    def properties() -> dict[str, str]:
        return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{table_path}`").collect()}

    assert "delta.enableDeletionVectors" not in properties()
    ensure_table(spark, table_path, SCHEMA, properties=DELETION_VECTORS)
    assert properties()["delta.enableDeletionVectors"] == "true"
    version = DeltaTable.forPath(spark, table_path).history(1).first()["version"]
    ensure_table(spark, table_path, SCHEMA, properties=DELETION_VECTORS)
    assert DeltaTable.forPath(spark, table_path).history(1).first()["version"] == version
