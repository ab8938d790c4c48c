"""Expectations: every broken rule recorded per row; actions warn, quarantine and fail."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality

from crm_lakehouse.silver.quality import Expectation, QualityError, check, rule_counts

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
    checked = check(batch, RULES, table="silver.orders", key="order_id")
    schema = "order_id string, amount double, status string, broken_rules array<string>"
    assert_df_equality(checked.accepted, spark.createDataFrame([("O1", 10.0, "completed", [])], schema),
                       ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(
        checked.quarantined,
        spark.createDataFrame([("O2", -1.0, "completed", ["amount_not_negative"]),
                               (None, -5.0, "lost", ["order_id_present", "amount_not_negative", "status_known"]),
                               ("O4", None, "lost", ["amount_not_negative", "status_known"])], schema),
        ignore_row_order=True, ignore_nullable=True)
    assert checked.accepted.count() + checked.quarantined.count() == batch.count()


def test_warn_rules_keep_the_row_and_are_counted(spark, batch):
    warn_only = [Expectation("status_known", "status IN ('completed')", "warn")]
    checked = check(batch, warn_only, table="silver.orders", key="order_id")
    assert checked.quarantined.count() == 0 and checked.accepted.count() == 4
    assert_df_equality(rule_counts(checked.accepted), spark.createDataFrame([("status_known", 2)], "rule string, rows long"),
                       ignore_nullable=True)


def test_a_fail_rule_stops_the_batch_naming_rule_table_and_a_key(batch):
    rules = [Expectation("amount_not_negative", "amount >= 0", "fail")]
    with pytest.raises(QualityError) as error:
        check(batch, rules, table="silver.orders", key="order_id")
    message = str(error.value)
    assert "rule 'amount_not_negative' failed on silver.orders" in message
    assert "order_id=" in message and "nothing was written" in message


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="action must be one of"):
        Expectation("x", "true", "drop")


def test_a_row_whose_mapping_expression_failed_is_quarantined_naming_field_and_expression(spark, batch):
    from pyspark.sql import functions as F

    from crm_lakehouse.silver.quality import EXPRESSION_FAILURES, triage

    label = "expression_failed(quantity: cast(Qty AS int))"
    failed = batch.withColumn(EXPRESSION_FAILURES, F.when(F.col("order_id") == "O1", F.array(F.lit(label)))
                              .otherwise(F.array().cast("array<string>"))).withColumn("raw_record", F.col("order_id"))
    judged = {r["order_id"]: (r["fate"], r["broken_rules"]) for r in triage(
        failed, [Expectation("status_known", "status IN ('completed')", "warn")], table="silver.orders",
        key=["order_id"], newest_first=[F.col("amount")]).collect()}
    assert judged["O1"] == ("quarantined", [label])
    assert judged["O2"] == ("accepted", [])
