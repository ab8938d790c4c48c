"""The ``train_churn`` job: snapshots -> candidates -> MLflow run -> registry -> champion decision.

Time-based split: the validation snapshot is the latest date whose label window is fully
observed (data end - horizon); training snapshots lie whole horizons before it, so no training
label looks past the validation date. Candidates are compared on customers held out of the
training period (they also fit the calibration); the chosen one is reported on the validation
snapshot, where it must also beat the current champion to take the ``champion`` alias.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from crm_lakehouse import batches
from crm_lakehouse.churn import evaluation, tracking
from crm_lakehouse.churn.features import (
    FEATURES, KEY, active_at_snapshot, churn_features, churn_labels, snapshot_frame,
)
from crm_lakehouse.churn.model import (
    PROBABILITY, calibrated, churn_probability, classifier_pipeline, feature_importances, with_class_weights,
)
from crm_lakehouse.config import Settings, join_path
from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.silver import contracts as silver

INPUTS = (silver.CUSTOMERS_HISTORY, silver.ORDER_LINES, silver.INTERACTIONS, silver.CUSTOMER_IDENTITY_MAP)


class TrainingDataError(LakehouseError):
    """The lakehouse does not hold enough labelled history to train a meaningful model."""


@dataclass
class TrainingResult:
    """What one training run did: its MLflow run, the registered version and the champion decision."""

    run_id: str
    model_version: str
    candidate: str
    validation: dict[str, float]
    promoted: bool
    decision: str
    oracle_roc_auc: float | None = None
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Snapshots:
    data_end: dt.date
    validation: dt.date
    training: list[dt.date]


def snapshot_dates(data_end: dt.date, *, horizon_days: int, train_snapshots: int) -> Snapshots:
    """Validation at data end - horizon; training snapshots one, two, ... horizons before it."""
    validation = data_end - dt.timedelta(days=horizon_days)
    training = [validation - dt.timedelta(days=horizon_days * k) for k in range(train_snapshots, 0, -1)]
    return Snapshots(data_end, validation, training)


def read_inputs(spark: SparkSession, settings: Settings) -> tuple[dict[str, DataFrame], dict[str, tuple[str, int]]]:
    """The silver inputs pinned at their current versions (time travel), and (path, version) of each."""
    frames, versions = {}, {}
    for contract in INPUTS:
        path = silver.table_path(settings, contract)
        version = batches.table_version(spark, path)
        if version < 0:
            raise TrainingDataError(f"silver.{contract.name} does not exist yet", where=path,
                                    fix="build the lakehouse first: crm-lakehouse job build_silver")
        versions[contract.name] = (path, version)
        frames[contract.name] = spark.read.format("delta").option("versionAsOf", version).load(path)
    return frames, versions


def data_end_date(lines: DataFrame, interactions: DataFrame) -> dt.date | None:
    """The latest local date in the data (the same as-of rule as gold)."""
    return lines.select(F.max("order_local_date").alias("d")).unionByName(
        interactions.select(F.max("occurred_local_date").alias("d"))).agg(F.max("d")).first()[0]


def labelled_snapshots(inputs: dict[str, DataFrame], snapshots: Snapshots, *, horizon_days: int,
                       active_window_days: int) -> DataFrame:
    """Features + label of active customers at every training and validation snapshot."""
    history = inputs[silver.CUSTOMERS_HISTORY.name]
    lines = inputs[silver.ORDER_LINES.name]
    spark = history.sparkSession
    frame = snapshot_frame(spark, [*snapshots.training, snapshots.validation])
    features = churn_features(history, lines, inputs[silver.INTERACTIONS.name], frame)
    labels = churn_labels(history, lines, frame, horizon_days=horizon_days)
    return active_at_snapshot(features, active_window_days=active_window_days).join(labels, list(KEY))


def true_propensity(spark: SparkSession, settings: Settings, identity_map: DataFrame) -> DataFrame | None:
    """(customer_id, true_propensity) from the generator's ground truth, when the landing has it."""
    from crm_lakehouse.generator import GROUND_TRUTH_DIR

    from crm_lakehouse import storage

    truth = join_path(settings.landing, GROUND_TRUTH_DIR)
    # Real CRM exports have no ground truth: look before reading, so nothing is logged as an error.
    if not all(storage.exists(spark, join_path(truth, part)) for part in ("people", "customer_records")):
        return None
    people = spark.read.parquet(join_path(truth, "people"))
    records = spark.read.parquet(join_path(truth, "customer_records"))
    linked = records.join(identity_map.select("source", "source_customer_id", "customer_id"),
                          ["source", "source_customer_id"])
    # One golden customer is one person when identity resolution is right; the max keeps a
    # (rare) merged cluster scored by its riskiest member.
    return linked.join(people, "person_id").groupBy("customer_id").agg(
        F.max("churn_propensity").cast("double").alias("true_propensity"))


def train_churn(spark: SparkSession, settings: Settings) -> TrainingResult:
    """Train the candidates, log everything to MLflow, register the best, decide the champion."""
    import mlflow

    started = time.monotonic()
    cfg = settings.churn
    inputs, versions = read_inputs(spark, settings)
    data_end = data_end_date(inputs[silver.ORDER_LINES.name], inputs[silver.INTERACTIONS.name])
    if data_end is None:
        if inputs[silver.CUSTOMERS_HISTORY.name].isEmpty():
            raise TrainingDataError("silver holds no customers, orders or interactions", where="train_churn",
                                    fix="ingest data and build silver first (crm-lakehouse job build_silver)")
        raise TrainingDataError(
            "silver holds customers but no orders or interactions: the churn model learns from purchase and "
            "service history", where="train_churn",
            fix="add an orders or interactions source; a churn label the CRM exports is in "
                "gold.customer_360.attributes for your own model meanwhile")
    snapshots = snapshot_dates(data_end, horizon_days=cfg.horizon_days, train_snapshots=cfg.train_snapshots)
    data = labelled_snapshots(inputs, snapshots, horizon_days=cfg.horizon_days,
                              active_window_days=cfg.active_window_days).localCheckpoint()
    in_calibration = (F.abs(F.xxhash64("customer_id", F.lit(cfg.params.seed))) % 1000) < int(cfg.calibration_share * 1000)
    training = data.where(F.col("snapshot_date") < F.lit(snapshots.validation))
    splits = {"fit": training.where(~in_calibration), "calibration": training.where(in_calibration),
              "validation": data.where(F.col("snapshot_date") == F.lit(snapshots.validation))}
    counts = _class_counts(splits)
    _refuse_thin_data(counts, cfg.min_class_rows, snapshots)

    tracking.use_tracking(settings)
    with mlflow.start_run(run_name=f"train_churn data_end={data_end}") as run:
        mlflow.log_params({
            "horizon_days": cfg.horizon_days, "active_window_days": cfg.active_window_days,
            "train_snapshots": ",".join(str(d) for d in snapshots.training),
            "validation_snapshot": str(snapshots.validation), "data_end": str(data_end),
            "calibration_share": cfg.calibration_share, "candidates": ",".join(cfg.candidates),
            "features": ",".join(FEATURES), "seed": cfg.params.seed,
            **{f"rows_{split}": c["rows"] for split, c in counts.items()},
            **{f"positives_{split}": c["positives"] for split, c in counts.items()},
        })
        for table, (path, version) in versions.items():
            mlflow.log_param(f"data.silver.{table}.version", version)
            mlflow.set_tag(f"data.silver.{table}.path", path)
        positive_share = counts["fit"]["positives"] / counts["fit"]["rows"]
        fitted = {}
        for candidate in cfg.candidates:
            with mlflow.start_run(run_name=candidate, nested=True):
                params = cfg.params.for_candidate(candidate)
                mlflow.log_params({"candidate": candidate, **params})
                classifier = classifier_pipeline(candidate, cfg.params).fit(
                    with_class_weights(splits["fit"], positive_share=positive_share))
                model = calibrated(classifier, splits["calibration"])
                holdout_auc = evaluation.roc_auc(churn_probability(model.transform(splits["calibration"])), PROBABILITY)
                validation_auc = evaluation.roc_auc(churn_probability(model.transform(splits["validation"])), PROBABILITY)
                mlflow.log_metrics({"holdout_roc_auc": holdout_auc, "validation_roc_auc": validation_auc})
                fitted[candidate] = (model, holdout_auc)
        chosen = max(fitted, key=lambda c: fitted[c][1])
        model = fitted[chosen][0]
        mlflow.log_param("chosen_candidate", chosen)
        mlflow.log_metrics({f"{c}_holdout_roc_auc": auc for c, (_, auc) in fitted.items()})

        scored = churn_probability(model.transform(splits["validation"])).localCheckpoint()
        report = evaluation.evaluate(scored)
        mlflow.log_metrics(report.metrics("validation_"))
        oracle = _log_oracle(spark, settings, inputs, scored, report)
        importances = feature_importances(model, scored)
        _log_artifacts(report, oracle, importances)
        if report.roc_auc < cfg.min_validation_auc:
            mlflow.set_tag("registered", "false: below churn.min_validation_auc")
            raise TrainingDataError(
                f"the best candidate ({chosen}) reaches a validation ROC AUC of {report.roc_auc:.3f}, below "
                f"churn.min_validation_auc {cfg.min_validation_auc}; it was not registered (MLflow run {run.info.run_id})",
                where="train_churn", fix="look at the run's plots; more history or other features are needed")

        version = _log_and_register(model, splits["validation"], settings)
        promoted, decision = _decide_champion(settings, version, splits["validation"], report.roc_auc)
        mlflow.set_tag("champion_decision", decision)
    return TrainingResult(run_id=run.info.run_id, model_version=str(version.version), candidate=chosen,
                          validation=report.metrics(), promoted=promoted, decision=decision,
                          oracle_roc_auc=oracle.roc_auc if oracle else None,
                          rows={split: c["rows"] for split, c in counts.items()},
                          seconds=round(time.monotonic() - started, 2))


def champion_is_current(spark: SparkSession, settings: Settings) -> bool:
    """Whether the champion was trained on the silver versions there are now (nothing to learn anew)."""
    from mlflow import MlflowClient

    tracking.use_tracking(settings)
    champion = tracking.champion_version(settings.churn.registered_model)
    if champion is None or not champion.run_id:
        return False
    params = MlflowClient().get_run(champion.run_id).data.params
    return all(params.get(f"data.silver.{c.name}.version") == str(batches.table_version(spark, silver.table_path(settings, c)))
               for c in INPUTS)


def _class_counts(splits: dict[str, DataFrame]) -> dict[str, dict[str, int]]:
    counts = {}
    for name, df in splits.items():
        row = df.agg(F.count("*").alias("rows"), F.sum("label").alias("positives")).first()
        counts[name] = {"rows": int(row["rows"]), "positives": int(row["positives"] or 0)}
    return counts


def _refuse_thin_data(counts: dict[str, dict[str, int]], minimum: int, snapshots: Snapshots) -> None:
    """Every split needs ``minimum`` churners and as many stayers, or the model is noise."""
    thin = {name: c for name, c in counts.items()
            if c["positives"] < minimum or c["rows"] - c["positives"] < minimum}
    if thin:
        figures = "; ".join(f"{name}: {c['positives']} churned / {c['rows'] - c['positives']} stayed"
                            for name, c in counts.items())
        raise TrainingDataError(
            f"too little labelled history to train a churn model ({figures}; at least {minimum} of each needed "
            f"in {', '.join(thin)}; snapshots {', '.join(map(str, snapshots.training))}, validation "
            f"{snapshots.validation}, data end {snapshots.data_end})", where="train_churn",
            fix="load more history (churn.horizon_days of data after each snapshot), or lower churn.min_class_rows")


def _log_oracle(spark: SparkSession, settings: Settings, inputs: dict[str, DataFrame], scored: DataFrame,
                report: evaluation.Evaluation) -> evaluation.Evaluation | None:
    """The true propensities' AUC on the same validation customers, when ground truth exists."""
    import mlflow

    truth = true_propensity(spark, settings, inputs[silver.CUSTOMER_IDENTITY_MAP.name])
    if truth is None:
        return None
    both = scored.join(truth, "customer_id")
    oracle = evaluation.evaluate(both, "true_propensity")
    model_on_same = evaluation.roc_auc(both, PROBABILITY)
    mlflow.log_metrics({"oracle_roc_auc": oracle.roc_auc, "oracle_rows": oracle.rows,
                        "model_roc_auc_on_oracle_rows": model_on_same,
                        "auc_vs_oracle": model_on_same / oracle.roc_auc if oracle.roc_auc else 0.0})
    return oracle


def _log_artifacts(report: evaluation.Evaluation, oracle: evaluation.Evaluation | None,
                   importances: dict[str, float]) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        evaluation.plot_roc(report, folder / "roc.png", oracle=oracle)
        evaluation.plot_lift(report, folder / "lift_by_decile.png")
        evaluation.plot_importances(importances, folder / "feature_importance.png")
        (folder / "deciles.json").write_text(json.dumps(report.deciles, indent=2))
        (folder / "feature_importance.json").write_text(json.dumps(
            dict(sorted(importances.items(), key=lambda kv: -kv[1])), indent=2))
        mlflow.log_artifacts(tmp, artifact_path="evaluation")


def _log_and_register(model, validation: DataFrame, settings: Settings):
    """Log the pipeline with its signature and an input example, and register a new version."""
    import mlflow
    import pyspark
    from mlflow.models import infer_signature

    example = validation.select(*FEATURES).limit(5).toPandas()
    info = mlflow.spark.log_model(
        model, artifact_path="model", signature=infer_signature(example), input_example=example,
        pip_requirements=[f"pyspark=={pyspark.__version__}", f"mlflow=={mlflow.__version__}"],
        dfs_tmpdir=settings.churn.dfs_tmpdir)
    # MLflow prints "Successfully registered model" and "Created version" to stderr itself; the
    # training result names the version, and the CLI's own summary says it once.
    with contextlib.redirect_stderr(io.StringIO()):
        return mlflow.register_model(info.model_uri, settings.churn.registered_model)


def _decide_champion(settings: Settings, version, validation: DataFrame, new_auc: float) -> tuple[bool, str]:
    """Give the new version the champion alias only if it beats the champion on this validation
    set; otherwise it becomes the challenger. Both scores and the decision go to the run."""
    import mlflow
    from mlflow import MlflowClient

    cfg = settings.churn
    client = MlflowClient()
    current = tracking.champion_version(cfg.registered_model)
    if current is None:
        promoted, decision = True, f"promoted: version {version.version} is the first champion"
    else:
        try:
            old = mlflow.spark.load_model(f"models:/{cfg.registered_model}/{current.version}", dfs_tmpdir=cfg.dfs_tmpdir)
            old_auc = evaluation.roc_auc(churn_probability(old.transform(validation)), PROBABILITY)
        except Exception as error:  # noqa: BLE001 - a champion that cannot score today's features is beaten
            mlflow.set_tag("champion_error", str(error).splitlines()[0][:500])
            old_auc = float("nan")
        mlflow.log_metrics({"champion_roc_auc": old_auc, "challenger_roc_auc": new_auc})
        if old_auc != old_auc or new_auc > old_auc + cfg.promotion_min_auc_gain:
            promoted = True
            decision = (f"promoted: version {version.version} (AUC {new_auc:.4f}) beats champion version "
                        f"{current.version} (AUC {old_auc:.4f}) on validation snapshot")
        else:
            promoted = False
            decision = (f"kept champion version {current.version} (AUC {old_auc:.4f}); version {version.version} "
                        f"(AUC {new_auc:.4f}) is the challenger")
    client.set_registered_model_alias(cfg.registered_model, tracking.CHAMPION if promoted else tracking.CHALLENGER,
                                      version.version)
    client.set_model_version_tag(cfg.registered_model, version.version, "validation_roc_auc", f"{new_auc:.4f}")
    client.set_model_version_tag(cfg.registered_model, version.version, "champion_decision", decision)
    return promoted, decision
