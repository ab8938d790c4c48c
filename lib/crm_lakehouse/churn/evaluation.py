"""Model quality on an evaluation set: ROC/PR AUC, lift by decile, Brier score, calibration.

Everything is aggregated in Spark; the driver only receives small tables (ten deciles, at most
a thousand ROC points), so evaluation stays flat in driver memory as the data grows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

ROC_RESOLUTION = 1000


@dataclass
class Evaluation:
    """Metrics of one score column against ``label`` (1.0 = churned) on one evaluation set."""

    rows: int
    positives: int
    roc_auc: float
    pr_auc: float
    brier_score: float
    lift_top_decile: float
    expected_calibration_error: float
    deciles: list[dict] = field(default_factory=list)
    roc_curve: list[tuple[float, float]] = field(default_factory=list)

    def metrics(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in (
            ("roc_auc", self.roc_auc), ("pr_auc", self.pr_auc), ("brier_score", self.brier_score),
            ("lift_top_decile", self.lift_top_decile), ("expected_calibration_error", self.expected_calibration_error),
            ("evaluation_rows", self.rows), ("evaluation_positives", self.positives))}


def roc_auc(scored: DataFrame, score: str) -> float:
    return BinaryClassificationEvaluator(rawPredictionCol=score, labelCol="label",
                                         metricName="areaUnderROC").evaluate(scored)


def evaluate(scored: DataFrame, score: str = "churn_probability") -> Evaluation:
    """Metrics of ``score`` (a probability in [0, 1]) against ``label``."""
    scored = scored.select(F.col(score).cast("double").alias("score"), F.col("label").cast("double").alias("label"))
    totals = scored.agg(F.count("*").alias("rows"), F.sum("label").alias("positives"),
                        F.avg((F.col("score") - F.col("label")) ** 2).alias("brier")).first()
    deciles = _deciles(scored)
    base_rate = totals["positives"] / totals["rows"]
    top = deciles[0]
    ece = sum(d["rows"] * abs(d["mean_score"] - d["churn_rate"]) for d in deciles) / totals["rows"]
    return Evaluation(
        rows=int(totals["rows"]), positives=int(totals["positives"]),
        roc_auc=roc_auc(scored, "score"),
        pr_auc=BinaryClassificationEvaluator(rawPredictionCol="score", labelCol="label",
                                             metricName="areaUnderPR").evaluate(scored),
        brier_score=float(totals["brier"]), lift_top_decile=top["churn_rate"] / base_rate if base_rate else 0.0,
        expected_calibration_error=float(ece), deciles=deciles, roc_curve=_roc_curve(scored),
    )


def _deciles(scored: DataFrame) -> list[dict]:
    """Ten equal-size groups by score, riskiest first: rows, mean score, churn rate, lift.

    Sized as SQL's ``ntile(10)``: the first ``rows % 10`` groups hold one row more.
    """
    # Ten tiles need one global order. The evaluation set is one row per customer, so its
    # (score, label) pairs are sorted by Spark and tiled here: a window over the whole set would
    # run in one partition anyway, and Spark warns about that in every training's output.
    pairs = [(r["score"], r["label"]) for r in scored.select("score", "label").orderBy(F.col("score").desc()).collect()]
    size, larger = divmod(len(pairs), 10)
    base = sum(label for _, label in pairs) / len(pairs) if pairs else 0.0
    deciles, start = [], 0
    for decile in range(1, 11):
        tile = pairs[start:start + size + (1 if decile <= larger else 0)]
        start += len(tile)
        if not tile:
            continue
        churn_rate = sum(label for _, label in tile) / len(tile)
        deciles.append({"decile": decile, "rows": len(tile), "mean_score": sum(score for score, _ in tile) / len(tile),
                        "churn_rate": churn_rate, "lift": churn_rate / base if base else 0.0})
    return deciles


def _roc_curve(scored: DataFrame) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) at up to ``ROC_RESOLUTION`` score thresholds."""
    buckets = scored.groupBy(F.floor(F.col("score") * ROC_RESOLUTION).alias("bucket")).agg(
        F.sum("label").alias("pos"), F.sum(1 - F.col("label")).alias("neg")).orderBy(F.col("bucket").desc()).collect()
    positives = sum(b["pos"] for b in buckets) or 1.0
    negatives = sum(b["neg"] for b in buckets) or 1.0
    points, tp, fp = [(0.0, 0.0)], 0.0, 0.0
    for bucket in buckets:
        tp += bucket["pos"]
        fp += bucket["neg"]
        points.append((fp / negatives, tp / positives))
    return points


# --- plots (artifacts) ---------------------------------------------------------------------


def plot_roc(evaluation: Evaluation, path: Path, *, oracle: Evaluation | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr = zip(*evaluation.roc_curve)
    ax.plot(fpr, tpr, label=f"model (AUC {evaluation.roc_auc:.3f})")
    if oracle is not None:
        ofpr, otpr = zip(*oracle.roc_curve)
        ax.plot(ofpr, otpr, linestyle="--", label=f"true propensity (AUC {oracle.roc_auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the validation snapshot")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_lift(evaluation: Evaluation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lift_ax, cal_ax) = plt.subplots(1, 2, figsize=(10, 4))
    deciles = [d["decile"] for d in evaluation.deciles]
    lift_ax.bar(deciles, [d["lift"] for d in evaluation.deciles])
    lift_ax.axhline(1.0, color="grey", linewidth=0.8)
    lift_ax.set(xlabel="decile (1 = riskiest 10%)", ylabel="lift over the base churn rate", title="Lift by decile")
    cal_ax.plot([d["mean_score"] for d in evaluation.deciles], [d["churn_rate"] for d in evaluation.deciles], marker="o")
    cal_ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    cal_ax.set(xlabel="mean predicted probability", ylabel="observed churn rate", title="Calibration by decile")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_importances(importances: dict[str, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6, max(3, 0.25 * len(ranked))))
    ax.barh([k for k, _ in ranked], [v for _, v in ranked])
    ax.set(xlabel="share of importance", title="Feature importance")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
