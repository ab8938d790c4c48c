"""Train -> register -> promote -> score on the test lakehouse, checked in MLflow and in gold."""

from __future__ import annotations

import dataclasses

import mlflow
import pytest
from chispa import assert_df_equality
from mlflow import MlflowClient
from pyspark.sql import functions as F

from crm_lakehouse import batches
from crm_lakehouse.churn import tracking
from crm_lakehouse.churn.train import TrainingDataError, train_churn
from crm_lakehouse.gold import contracts as gold
from crm_lakehouse.silver import contracts as silver
from tests.conftest import with_churn

MODEL = "crm_churn"


@pytest.fixture()
def client(churn_runs):
    tracking.use_tracking(churn_runs.settings)
    return MlflowClient()


def test_scoring_without_a_champion_says_so_and_how_to_get_one(churn_runs):
    assert "no champion churn model" in churn_runs.no_champion_error
    assert "crm-lakehouse job train_churn" in churn_runs.no_champion_error


def test_default_model_reaches_95_percent_of_the_true_propensities_auc(churn_runs, client):
    run = client.get_run(churn_runs.default.run_id)
    metrics = run.data.metrics
    assert metrics["oracle_roc_auc"] > 0.6
    assert metrics["auc_vs_oracle"] >= 0.95, metrics
    assert metrics["auc_vs_oracle"] == pytest.approx(metrics["model_roc_auc_on_oracle_rows"] / metrics["oracle_roc_auc"])
    # Every validation customer could be traced to a generated person.
    assert metrics["oracle_rows"] == metrics["validation_evaluation_rows"]


def test_run_logs_metrics_plots_data_versions_and_a_model_with_signature(spark, churn_runs, client, tmp_path):
    run = client.get_run(churn_runs.default.run_id)
    for name in ("validation_roc_auc", "validation_pr_auc", "validation_lift_top_decile", "validation_brier_score",
                 "validation_expected_calibration_error"):
        assert name in run.data.metrics
    assert 0.0 < run.data.metrics["validation_brier_score"] < 0.25
    assert run.data.metrics["validation_lift_top_decile"] > 1.5
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/roc.png", "evaluation/lift_by_decile.png", "evaluation/feature_importance.png",
            "evaluation/deciles.json", "evaluation/feature_importance.json"} <= artifacts
    # The silver versions it read (nothing wrote silver since) and where those tables live.
    for contract in (silver.CUSTOMERS_HISTORY, silver.ORDER_LINES, silver.INTERACTIONS):
        path = silver.table_path(churn_runs.settings, contract)
        assert run.data.params[f"data.silver.{contract.name}.version"] == str(batches.table_version(spark, path))
        assert run.data.tags[f"data.silver.{contract.name}.path"] == path
    model_info = mlflow.models.get_model_info(f"models:/{MODEL}/{churn_runs.default.model_version}")
    assert "recency_days" in model_info.signature.inputs.input_names()
    assert model_info.saved_input_example_info is not None
    # The registered model serves as MLflow's generic pyfunc too: a class per row of its example.
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}/{churn_runs.default.model_version}",
                                      dst_path=str(tmp_path))
    example = served.input_example
    assert len(example) == 5 and set(served.predict(example)) <= {0.0, 1.0}
    # Both candidates ran as child runs with their own scores.
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert sorted(c.data.params["candidate"] for c in children) == ["gbt", "logistic_regression"]


def test_champion_moves_only_to_a_better_model(churn_runs, client):
    weak, default, not_better = churn_runs.weak, churn_runs.default, churn_runs.not_better
    assert weak.promoted and "first champion" in weak.decision
    assert default.promoted and default.validation["roc_auc"] > weak.validation["roc_auc"]
    assert not not_better.promoted
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == default.model_version
    assert str(client.get_model_version_by_alias(MODEL, "challenger").version) == not_better.model_version
    # The decision and both scores are in the challenger's run.
    run = client.get_run(not_better.run_id)
    assert run.data.tags["champion_decision"].startswith(f"kept champion version {default.model_version}")
    assert run.data.metrics["champion_roc_auc"] == pytest.approx(default.validation["roc_auc"])
    assert run.data.metrics["challenger_roc_auc"] == pytest.approx(not_better.validation["roc_auc"])


def test_scores_cover_every_customer_and_fill_the_customer_360_churn_columns(spark, churn_runs):
    settings = churn_runs.settings
    scores = spark.read.format("delta").load(gold.table_path(settings, gold.CHURN_SCORES))
    everyone = spark.read.format("delta").load(gold.table_path(settings, gold.CUSTOMER_360))
    # Active customers are scored; deleted ones and the unknown member of guest sales are not.
    c360 = everyone.where("customer_status = 'active'")
    assert everyone.where("customer_status <> 'active'").count() > 0
    assert everyone.where("customer_status <> 'active' AND churn_probability IS NOT NULL").count() == 0
    assert churn_runs.scoring.customers == c360.count() == scores.count()
    assert scores.where(F.col("model_version") != churn_runs.default.model_version).count() == 0
    assert_df_equality(
        c360.select("customer_id", "churn_probability", "churn_risk_band", "churn_model_version"),
        scores.select("customer_id", "churn_probability", "churn_risk_band",
                      F.col("model_version").alias("churn_model_version")),
        ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)  # customer_360's columns have comments
    bands = churn_runs.scoring.bands
    assert set(bands) == {"high", "medium", "low"} and sum(bands.values()) == scores.count()
    high = scores.where("churn_risk_band = 'high'").agg(F.min("churn_probability")).first()[0]
    assert high >= settings.churn.risk_bands["high"]


def test_scoring_again_on_the_same_data_changes_no_table(churn_runs):
    assert all(not w.skipped for w in churn_runs.scoring.writes.values())
    assert all(w.skipped for w in churn_runs.rescoring.writes.values())


def test_too_few_churners_refuses_to_train_and_registers_nothing(spark, churn_runs, client):
    before = len(client.search_model_versions(f"name = '{MODEL}'"))
    with pytest.raises(TrainingDataError, match=r"too little labelled history .*churned / \d+ stayed"):
        train_churn(spark, with_churn(churn_runs.settings, min_class_rows=100_000))
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == before


def test_tracking_store_lives_in_the_lakehouse_unless_mlflow_tracking_uri_says_otherwise(churn_runs, monkeypatch):
    settings = churn_runs.settings
    assert tracking.tracking_uri(settings) == f"sqlite:///{settings.root}/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking.tracking_uri(settings) == "http://mlflow.example:5000"
    assert tracking.artifact_location(settings) is None
    cluster = dataclasses.replace(settings, root="s3a://bucket/crm")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    with pytest.raises(Exception, match="MLFLOW_TRACKING_URI"):
        tracking.tracking_uri(cluster)


def test_customers_without_orders_are_told_what_the_model_needs(spark, base_settings, tmp_path):
    import datetime as dt

    from crm_lakehouse.churn.train import true_propensity
    from tests.conftest import settings_for

    settings = settings_for(base_settings, tmp_path / "lakehouse")
    silver.ensure_silver_tables(spark, settings)
    with pytest.raises(TrainingDataError, match="silver holds no customers, orders or interactions"):
        train_churn(spark, settings)
    at = dt.datetime(2026, 11, 30)
    record = ("C1", "us_telco_billing_customers", "7590-VHVEG", "us", "partner", "insert", 1, None, None, None, "F", None,
              None, None, None, None, None, {"churned": "false"}, at, None, True, 0, None)
    spark.createDataFrame([record], silver.CUSTOMERS_HISTORY.schema).write.format("delta").mode("append") \
        .save(silver.table_path(settings, silver.CUSTOMERS_HISTORY))
    with pytest.raises(TrainingDataError) as error:
        train_churn(spark, settings)
    assert "customers but no orders or interactions" in str(error.value)
    assert "attributes" in str(error.value) and "ingest data" not in str(error.value)
    # Real exports have no generator truth: the oracle is skipped without reading a missing folder.
    assert true_propensity(spark, settings, spark.createDataFrame([], silver.CUSTOMER_IDENTITY_MAP.schema)) is None
