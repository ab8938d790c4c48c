"""Expectations: every broken rule recorded per row; actions warn, quarantine and fail."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from pyspark.sql import functions as F

from crm_lakehouse.silver.quality import EXPRESSION_FAILURES, Expectation, QualityError, mark, triage

RULES = [
    Expectation("order_id_present", "order_id IS NOT NULL", "quarantine"),
    Expectation("amount_not_negative", "amount >= 0", "quarantine"),
    Expectation("status_known", "status IN ('completed', 'returned', 'cancelled')", "warn"),
]


@pytest.fixture
def batch(spark):
    return spark.createDataFrame(
        [("O1", 10.0, "completed"), ("O2", -1.0, "completed"), (None, -5.0, "lost"), ("O4", None, "lost")],
        "order_id string, amount double, status string")


def test_each_row_lists_every_rule_it_broke_and_quarantine_rules_decide(spark, batch):
    marked = mark(batch, RULES, table="silver.orders", key="order_id")
    schema = "order_id string, amount double, status string, broken_rules array<string>, is_quarantined boolean"
    assert_df_equality(
        marked,
        spark.createDataFrame([("O1", 10.0, "completed", [], False),
                               ("O2", -1.0, "completed", ["amount_not_negative"], True),
                               (None, -5.0, "lost", ["order_id_present", "amount_not_negative", "status_known"], True),
                               ("O4", None, "lost", ["amount_not_negative", "status_known"], True)], schema),
        ignore_row_order=True, ignore_nullable=True)


def test_warn_rules_keep_the_row_and_are_recorded(spark, batch):
    warn_only = [Expectation("status_known", "status IN ('completed')", "warn")]
    marked = mark(batch, warn_only, table="silver.orders", key="order_id")
    assert marked.where("is_quarantined").count() == 0
    assert {r["order_id"]: r["broken_rules"] for r in marked.collect()} == {
        "O1": [], "O2": [], None: ["status_known"], "O4": ["status_known"]}


def test_triage_keeps_the_newest_clean_row_of_a_key_and_quarantines_the_rest(spark):
    rows = spark.createDataFrame([("O1", 3, 1.0, "a"), ("O1", 5, 2.0, "b"), ("O1", 9, -1.0, "c"), ("O2", 1, 4.0, "d")],
                                 "order_id string, seq int, amount double, raw_record string")
    judged = triage(rows, [Expectation("amount_not_negative", "amount >= 0")], table="silver.orders",
                    key=["order_id"], newest_first=[F.col("seq").desc()])
    assert sorted((r["raw_record"], r["fate"]) for r in judged.collect()) == [
        ("a", "duplicate"), ("b", "accepted"), ("c", "quarantined"), ("d", "accepted")]


def test_a_fail_rule_stops_the_batch_naming_rule_table_and_a_key(batch):
    rules = [Expectation("amount_not_negative", "amount >= 0", "fail")]
    with pytest.raises(QualityError) as error:
        mark(batch, rules, table="silver.orders", key="order_id")
    message = str(error.value)
    assert "rule 'amount_not_negative' failed on silver.orders" in message
    assert "order_id=" in message and "nothing was written" in message


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="action must be one of"):
        Expectation("x", "true", "drop")


def test_a_row_whose_mapping_expression_failed_is_quarantined_naming_field_and_expression(spark, batch):
    label = "expression_failed(quantity: cast(Qty AS int))"
    failed = batch.withColumn(EXPRESSION_FAILURES, F.when(F.col("order_id") == "O1", F.array(F.lit(label)))
                              .otherwise(F.array().cast("array<string>"))).withColumn("raw_record", F.col("order_id"))
    judged = {r["order_id"]: (r["fate"], r["broken_rules"]) for r in triage(
        failed, [Expectation("status_known", "status IN ('completed')", "warn")], table="silver.orders",
        key=["order_id"], newest_first=[F.col("amount")]).collect()}
    assert judged["O1"] == ("quarantined", [label])
    assert judged["O2"] == ("accepted", [])
