"""``crm-lakehouse demo``: a small multi-region data set through every layer built so far."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pyspark.sql import SparkSession

from crm_lakehouse.bronze.ingest import bronze_summary
from crm_lakehouse.churn import tracking
from crm_lakehouse.churn.score import ScoringResult, score_churn
from crm_lakehouse.churn.train import TrainingResult, champion_is_current, train_churn
from crm_lakehouse.config import Settings
from crm_lakehouse.generator import already_generated, generate, make_plan
from crm_lakehouse.gold import summary as gold_summary
from crm_lakehouse.gold.build import GoldBatchResult, build_gold
from crm_lakehouse.jobs import JobResult, ingest_bronze
from crm_lakehouse.silver import summary as silver_summary
from crm_lakehouse.silver.build import BatchResult, build_silver


@dataclass
class DemoResult:
    landing: str
    days: list[int]
    ingest: JobResult
    bronze: list[dict]
    silver_batches: list[BatchResult]
    silver_tables: list[dict]
    silver_reconciliation: list[dict]
    quarantine_by_rule: list[dict]
    gold_batches: list[GoldBatchResult]
    segments: list[dict]
    sales: list[dict]
    training: TrainingResult | None      # None: the champion already knew this data
    scoring: ScoringResult | None
    champion: dict | None                # the champion's version and validation metrics
    mlflow_ui: str
    reporting_currency: str = "USD"


def run_demo(spark: SparkSession, settings: Settings, *, scale: float | None = None, days: int | None = None) -> DemoResult:
    """Generate days 0..N-1 into the landing folder, ingest them into bronze, refine them into
    silver, maintain the gold marts, train the churn model and score every customer.

    Days already in the landing folder (same seed and scale) are not generated again, bronze
    ingests nothing twice, silver consumes only what bronze gained and gold only what silver
    changed; the model is retrained only when silver changed since the champion was trained,
    and scoring rewrites only changed scores, so a rerun is quick and changes no table.
    """
    day_list = list(range(days if days is not None else settings.generator.days))
    plan = make_plan(settings, scale=scale)
    missing = [day for day in day_list if not already_generated(spark, plan, settings.landing, day)]
    if missing:
        generate(spark, plan, settings.landing, missing)
    ingest = ingest_bronze(spark, settings)
    batches = build_silver(spark, settings) if ingest.ok else []
    marts = build_gold(spark, settings) if ingest.ok else []
    training = scoring = None
    # The tables' summaries are read while the model trains and scores: both are mostly the
    # driver's one-threaded planning, which leaves a core idle. Scoring changes only the churn
    # columns of customer_360, which no summary reads.
    with ThreadPoolExecutor(max_workers=1) as beside:
        summaries = beside.submit(_layer_summaries, spark, settings)
        if ingest.ok:
            training = None if champion_is_current(spark, settings) else train_churn(spark, settings)
            scoring = score_churn(spark, settings)
        held = summaries.result()
    return DemoResult(landing=settings.landing, days=day_list, ingest=ingest, silver_batches=batches,
                      gold_batches=marts, training=training, scoring=scoring,
                      champion=_champion_summary(settings) if ingest.ok else None,
                      mlflow_ui=tracking.ui_command(settings), reporting_currency=settings.reporting_currency, **held)


def _layer_summaries(spark: SparkSession, settings: Settings) -> dict[str, list[dict]]:
    """What bronze, silver and gold hold, as the demo prints it (``DemoResult``'s fields)."""
    return {"bronze": bronze_summary(spark, settings), "silver_tables": silver_summary.table_counts(spark, settings),
            "silver_reconciliation": silver_summary.reconciliation_totals(spark, settings),
            "quarantine_by_rule": silver_summary.quarantine_by_rule(spark, settings),
            "segments": gold_summary.segments(spark, settings),
            "sales": gold_summary.sales_by_region_channel(spark, settings)}


def _champion_summary(settings: Settings) -> dict:
    from mlflow import MlflowClient

    champion = tracking.require_champion(settings)
    metrics = MlflowClient().get_run(champion.run_id).data.metrics
    return {"version": str(champion.version), "run_id": champion.run_id,
            **{k: metrics.get(f"validation_{k}") for k in ("roc_auc", "pr_auc", "lift_top_decile", "brier_score")},
            "oracle_roc_auc": metrics.get("oracle_roc_auc")}
