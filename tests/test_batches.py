"""Batch plans: a layer's batch loop (resume, nothing new), and table reads pinned to the plan's
versions, opened only when a step reads them."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from chispa import assert_df_equality
from py4j.protocol import Py4JJavaError
from pyspark.sql.types import LongType, StructType

from crm_lakehouse.batches import BatchPlan, Kept, Layer, TablesAsOf, table_version
from crm_lakehouse.spark import INTERPRETED_EXPRESSIONS
from crm_lakehouse.tables import TableContract, ensure_contract, required
from tests.conftest import WITHOUT_ADAPTIVE_EXECUTION, settings_for

SCHEMA = "id int, name string"


def test_a_released_batch_frees_its_materializations_blocks(spark):
    def stored() -> set[int]:
        return {info.id() for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()}

    before = stored()
    keep = Kept("test", 0)
    kept = [keep(spark.range(1000).selectExpr("id", "id * 2 AS twice"), "numbers"),
            keep(spark.range(10).selectExpr("id AS small"), "small numbers")]
    assert [df.count() for df in kept] == [1000, 10]
    assert len(stored() - before) == 2  # each materialization holds its blocks until released
    keep.release()
    assert stored() - before == set()


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


RUN_LOG = TableContract(name="run_log", grain="one row per batch", key=("batch_id",), subject_match=(),
                        schema=StructType([required("batch_id", LongType()), required("rows", LongType())]))


def test_a_layer_resumes_an_unfinished_batch_with_its_plan_then_runs_what_is_new(spark, base_settings, tmp_path):
    settings = settings_for(base_settings, tmp_path)
    layer = Layer("toy", {"run_log": RUN_LOG})
    source = str(tmp_path / "bronze" / "src")
    ensure_contract(spark, layer.paths(settings)["run_log"], RUN_LOG)
    spark.createDataFrame([(1, "a")], SCHEMA).write.format("delta").save(source)
    seen = []

    def batch(plan, *, crash=False):
        seen.append((plan.batch_id, plan.inputs, plan.resumed))
        if crash:
            raise RuntimeError("killed mid-batch")
        spark.createDataFrame([(plan.batch_id, plan.inputs["src"][1])], RUN_LOG.schema) \
            .write.format("delta").mode("append").save(layer.paths(settings)["run_log"])
        return plan.batch_id

    with pytest.raises(RuntimeError):
        layer.run_pending(spark, settings, inputs={"src": source}, run_batch=lambda plan: batch(plan, crash=True))
    spark.createDataFrame([(2, "b")], SCHEMA).write.format("delta").mode("append").save(source)
    # The crashed batch runs again with the plan it saved (version 0 only); version 1 is the next batch.
    assert layer.run_pending(spark, settings, inputs={"src": source}, run_batch=batch) == [0, 1]
    assert seen == [(0, {"src": (0, 0)}, False), (0, {"src": (0, 0)}, True), (1, {"src": (1, 1)}, False)]
    assert layer.run_pending(spark, settings, inputs={"src": source}, run_batch=batch) == []
    assert spark.table("toy.run_log").count() == 2


def test_commits_that_change_no_row_the_layer_reads_are_consumed_without_a_batch(spark, base_settings, tmp_path):
    settings = settings_for(base_settings, tmp_path)
    source = str(tmp_path / "bronze" / "src")
    seen = []

    def run(layer: Layer) -> list[int]:
        ensure_contract(spark, layer.paths(settings)["run_log"], RUN_LOG)

        def batch(plan):
            seen.append(plan.inputs)
            spark.createDataFrame([(plan.batch_id, 0)], RUN_LOG.schema) \
                .write.format("delta").mode("append").save(layer.paths(settings)["run_log"])
            return plan.batch_id

        return layer.run_pending(spark, settings, inputs={"src": source}, run_batch=batch)

    inserts_only = Layer("toy", {"run_log": RUN_LOG}, reads_inserts_only=True)
    for name in ("a", "b"):                                                  # versions 0, 1
        spark.createDataFrame([(1, name)], SCHEMA).write.format("delta").mode("append").save(source)
    assert run(inserts_only) == [0]
    spark.sql(f"OPTIMIZE delta.`{source}`")                                  # 2
    spark.sql(f"DELETE FROM delta.`{source}` WHERE name = 'a'")              # 3: an erasure, say
    assert run(inserts_only) == [] and seen == [{"src": (0, 1)}]             # plan 1 consumes them, no batch
    assert run(inserts_only) == []
    spark.createDataFrame([(2, "c")], SCHEMA).write.format("delta").mode("append").save(source)  # 4
    assert run(inserts_only) == [2] and seen[-1] == {"src": (4, 4)}
    # A layer that reads every change (gold over silver) needs a batch for the DELETE.
    assert run(Layer("toy2", {"run_log": RUN_LOG})) == [0] and seen[-1] == {"src": (0, 4)}
    spark.sql(f"OPTIMIZE delta.`{source}`")
    assert run(Layer("toy2", {"run_log": RUN_LOG})) == []


def test_a_batch_below_the_row_threshold_runs_interpreted_and_a_larger_one_compiled(spark, base_settings, tmp_path):
    settings = settings_for(base_settings, tmp_path)
    settings = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, interpreted_below_rows=5))
    layer = Layer("toy", {"run_log": RUN_LOG})
    source = str(tmp_path / "bronze" / "src")
    ensure_contract(spark, layer.paths(settings)["run_log"], RUN_LOG)
    modes = []

    def batch(plan):
        modes.append((spark.conf.get("spark.sql.codegen.factoryMode"), spark.conf.get("spark.sql.codegen.wholeStage")))
        spark.createDataFrame([(plan.batch_id, 0)], RUN_LOG.schema) \
            .write.format("delta").mode("append").save(layer.paths(settings)["run_log"])

    # The test session runs interpreted (conftest): here it has Spark's defaults, as a job's has.
    test_session = {key: spark.conf.get(key) for key in {**INTERPRETED_EXPRESSIONS, **WITHOUT_ADAPTIVE_EXECUTION}}
    for key in test_session:
        spark.conf.unset(key)
    try:
        default_mode = spark.conf.get("spark.sql.codegen.factoryMode")
        for rows in (4, 5, 1):
            spark.range(rows).selectExpr("CAST(id AS INT) AS id", "'x' AS name") \
                .write.format("delta").mode("append").save(source)
            layer.run_pending(spark, settings, inputs={"src": source}, run_batch=batch)
        assert modes == [("NO_CODEGEN", "false"), (default_mode, "true"), ("NO_CODEGEN", "false")]
        assert spark.conf.get("spark.sql.codegen.factoryMode") == default_mode
    finally:
        for key, value in test_session.items():
            spark.conf.set(key, value)


def test_a_small_change_to_inputs_holding_more_than_the_byte_bound_runs_compiled(spark, base_settings, tmp_path,
                                                                                 monkeypatch, caplog):
    """A batch reads its inputs whole: over large tables compiled scans win, however few rows changed."""
    from crm_lakehouse import batches
    from crm_lakehouse.delta_writes import table_bytes

    settings = settings_for(base_settings, tmp_path)
    settings = dataclasses.replace(settings, spark=dataclasses.replace(settings.spark, interpreted_below_rows=5))
    source = str(tmp_path / "bronze" / "src")
    spark.range(2).selectExpr("CAST(id AS INT) AS id").write.format("delta").save(source)
    held = table_bytes(spark, source, 0)
    assert held is not None and held > 0
    plan = BatchPlan(batch_id=0, inputs={"src": (0, 0)}, consumed={"src": 0}, outputs_before={})
    assert batches.small_batch(spark, settings, plan, {"src": source})
    monkeypatch.setattr(batches, "INTERPRETED_BELOW_BYTES", held)
    caplog.set_level(logging.INFO, logger="crm_lakehouse.batches")
    assert not batches.small_batch(spark, settings, plan, {"src": source})
    assert "batch 0: 2 input rows changed, but its inputs hold 0 MiB or more: expressions compiled" in caplog.messages


def test_a_layer_runs_only_the_steps_whose_inputs_changed_in_order_and_a_step_can_pass_a_change_on():
    from crm_lakehouse.batches import Step, run_steps

    ran = []

    def step(name: str, passes_on: str | None = None):
        def run(batch: list) -> None:
            batch.append(name)
            if passes_on:
                changed.add(passes_on)
        return run

    steps = [Step("reference", frozenset({"fx_rates", "products"}), step("reference")),
             Step("customers", frozenset({"customers"}), step("customers", passes_on="customer ids")),
             Step("orders", frozenset({"orders", "customer ids"}), step("orders")),
             Step("interactions", frozenset({"interactions"}), step("interactions"))]
    changed = {"customers"}
    run_steps(steps, ran, changed, where="test batch")
    assert ran == ["customers", "orders"]  # orders only because customers passed new ids on
    ran.clear()
    changed = {"interactions", "products"}
    run_steps(steps, ran, changed, where="test batch")
    assert ran == ["reference", "interactions"]
