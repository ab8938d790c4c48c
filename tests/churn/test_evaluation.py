"""Churn evaluation on inline scores: deciles equal SQL's ntile(10) over the scores, riskiest first."""

from __future__ import annotations

import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from crm_lakehouse.churn.evaluation import evaluate


def test_deciles_are_sqls_ntile_of_the_scores_riskiest_first_with_their_churn_rate_and_lift(spark):
    # 23 customers with distinct scores (a total order): tiles of 3, 3, 3, then 2s.
    rows = [(round(0.97 - i * 0.04, 2), 1.0 if i % 3 == 0 or i < 4 else 0.0) for i in range(23)]
    scored = spark.createDataFrame(rows, "churn_probability double, label double")

    deciles = evaluate(scored).deciles

    by_ntile = (scored.withColumn("decile", F.ntile(10).over(Window.orderBy(F.col("churn_probability").desc())))
                .groupBy("decile").agg(F.count("*").alias("rows"), F.avg("churn_probability").alias("mean_score"),
                                       F.avg("label").alias("churn_rate")).orderBy("decile").collect())
    assert [d["rows"] for d in deciles] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2] == [r["rows"] for r in by_ntile]
    for ours, sqls in zip(deciles, by_ntile):
        assert ours["decile"] == sqls["decile"]
        assert ours["mean_score"] == pytest.approx(sqls["mean_score"])
        assert ours["churn_rate"] == pytest.approx(sqls["churn_rate"])
    base = sum(label for _, label in rows) / len(rows)
    assert deciles[0]["churn_rate"] == 1.0 and deciles[0]["lift"] == pytest.approx(1.0 / base)


def test_fewer_customers_than_deciles_give_one_tile_each(spark):
    scored = spark.createDataFrame([(0.9, 1.0), (0.2, 0.0), (0.5, 1.0)], "churn_probability double, label double")
    evaluation = evaluate(scored)
    assert [(d["decile"], d["rows"], d["churn_rate"]) for d in evaluation.deciles] == [(1, 1, 1.0), (2, 1, 1.0), (3, 1, 0.0)]
    assert evaluation.lift_top_decile == pytest.approx(1.5)
