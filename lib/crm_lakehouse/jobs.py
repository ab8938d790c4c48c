"""The jobs: named entry points shared by spark-submit shims (jobs/*.py), the CLI and the tests.

Each job takes a session and the loaded settings, does one thing, and returns a small summary
(plain values, printable, never DataFrames) whose ``failed`` list says what did not work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from crm_lakehouse.bronze.ingest import ingest_all
from crm_lakehouse.config import Settings
from crm_lakehouse.errors import ConfigError


@dataclass
class JobResult:
    """What a job did: printable rows and the failures that should make the run exit non-zero."""

    name: str
    rows: list[dict] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # More tables to print after ``rows``: title -> rows.
    sections: dict[str, list[dict]] = field(default_factory=dict)
    # Lines worth reading that are not failures.
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def ingest_bronze(spark: SparkSession, settings: Settings) -> JobResult:
    result = JobResult("ingest_bronze")
    for outcome in ingest_all(spark, settings):
        result.rows.append({"source": outcome.source, "rows_added": outcome.rows_added,
                            "batches": outcome.batches, "seconds": outcome.seconds})
        if outcome.error:
            result.failed.append(outcome.error)
    return result


def build_silver(spark: SparkSession, settings: Settings) -> JobResult:
    from crm_lakehouse.silver.build import build_silver as run
    from crm_lakehouse.silver.contracts import IDENTITY_REVIEW, table_path

    result = JobResult("build_silver")
    batches = run(spark, settings)
    by_rule: list[dict] = []
    for batch in batches:
        for row in batch.reconciliation:
            result.rows.append({"batch": batch.batch_id, "source": row["source"], "table": row["target_table"],
                                "rows_in": row["rows_in"], "accepted": row["accepted"],
                                "quarantined": row["quarantined"], "duplicates": row["duplicates_removed"]})
            rules = batch.quarantined_by_rule.get(row["source"], {})
            by_rule += [{"batch": batch.batch_id, "source": row["source"], "rule": rule, "rows": n}
                        for rule, n in sorted(rules.items(), key=lambda item: (-item[1], item[0]))]
            alarm = quarantine_alarm(settings, batch.batch_id, row, rules)
            if alarm:
                result.failed.append(alarm)
        for source, currency, lines in batch.currencies_without_rate:
            result.notes.append(
                f"currency {currency} has no rate to {settings.reporting_currency}: {lines} order lines of {source} "
                f"quarantined in batch {batch.batch_id} (known_currency) — fix: add its daily rates to an FX rates "
                "source (or correct the lines' currency); the lines stay in silver.quarantine")
    if not batches:
        result.rows.append({"batch": "-", "source": "(bronze has nothing new)", "table": "", "rows_in": 0,
                            "accepted": 0, "quarantined": 0, "duplicates": 0})
    result.sections["Quarantined rows by rule (a row breaking two rules counts under both)"] = \
        by_rule or [{"batch": "-", "source": "(nothing quarantined)", "rule": "", "rows": 0}]
    matched = [{"batch": b.batch_id, "records_rescored": int(b.identity["rescored_records"]),
                "pairs_compared": int(b.identity["pairs_scored"]), "model_s": b.identity["model_s"],
                "scoring_s": b.identity["scoring_s"]} for b in batches if b.identity]
    if matched:
        result.sections["Identity matching (the model's candidate pairs; docs/identity.md)"] = matched
        waiting = spark.read.format("delta").load(table_path(settings, IDENTITY_REVIEW)).count()
        if waiting:
            result.notes.append(f"{waiting} pairs of records wait for a data steward in silver.identity_review — "
                                "confirm or reject them in silver.identity_decisions (docs/identity.md)")
    return result


def quarantine_alarm(settings: Settings, batch_id: int, row: dict, rules: dict[str, int]) -> str | None:
    """One line when a batch quarantined more of a source's rows than it allows, naming the top
    rules and what they usually mean; None otherwise."""
    source = settings.source(row["source"])
    allowed = source.max_quarantined_share if source.max_quarantined_share is not None \
        else settings.silver.max_quarantined_share
    if not row["rows_in"] or row["quarantined"] <= allowed * row["rows_in"] or allowed >= 1:
        return None
    top = sorted(rules.items(), key=lambda item: (-item[1], item[0]))[:3]
    hints = {rule: QUARANTINE_HINTS[rule].format(reporting=settings.reporting_currency, source=source.name)
             for rule, _ in top if rule in QUARANTINE_HINTS}
    return (f"source {source.name}: batch {batch_id} quarantined {row['quarantined']} of {row['rows_in']} rows "
            f"({row['quarantined'] / row['rows_in']:.0%}, more than max_quarantined_share {allowed:g}); top rules: "
            + ", ".join(f"{rule} {n}" for rule, n in top) + " — fix: "
            + ("; ".join(hints.values()) or "inspect silver.quarantine for the source and correct its YAML or the export")
            + f" (the rows are in silver.quarantine; set max_quarantined_share on {source.name} to accept this)")


# What a rule that quarantines most of a source usually means about its YAML.
QUARANTINE_HINTS = {
    "known_currency": "the lines' currency has no rate to {reporting}: add an FX rates source, or set "
                      "reporting_currency to the sources' currency",
    "known_status": "map {source}'s status values to completed/returned/cancelled/pending (values: ... default: ...)",
    "positive_quantity": "returns have negative quantities: map their status or set negative_quantity: return",
    "parseable_ordered_at": "timestamp_format does not match {source}'s timestamps (crm-lakehouse source preview)",
    "parseable_record": "the reader options (sep, encoding, header) do not fit {source}'s files",
    "file_matches_declared_columns": "{source}'s files have other columns than declared",
    "has_source_customer_id": "{source}'s customer id column is empty or not mapped",
}


def build_gold(spark: SparkSession, settings: Settings) -> JobResult:
    from crm_lakehouse.gold.build import build_gold as run

    result = JobResult("build_gold")
    batches = run(spark, settings)
    for batch in batches:
        result.rows.append({"batch": batch.batch_id, "as_of_date": batch.as_of_date, **{
            f"affected_{k}": v for k, v in batch.affected.items()}, "seconds": batch.seconds})
    if not batches:
        result.rows.append({"batch": "-", "as_of_date": "(silver has not changed)"})
    return result


def train_churn(spark: SparkSession, settings: Settings) -> JobResult:
    from crm_lakehouse.churn.train import train_churn as run

    trained = run(spark, settings)
    metrics = trained.validation
    return JobResult("train_churn", rows=[{
        "run_id": trained.run_id, "model_version": trained.model_version, "candidate": trained.candidate,
        "roc_auc": round(metrics["roc_auc"], 4), "pr_auc": round(metrics["pr_auc"], 4),
        "lift_top_decile": round(metrics["lift_top_decile"], 2), "brier": round(metrics["brier_score"], 4),
        "oracle_roc_auc": round(trained.oracle_roc_auc, 4) if trained.oracle_roc_auc is not None else "-",
        "decision": trained.decision}])


def score_churn(spark: SparkSession, settings: Settings) -> JobResult:
    from crm_lakehouse.churn.score import score_churn as run

    scored = run(spark, settings)
    return JobResult("score_churn", rows=[{
        "model_version": scored.model_version, "as_of_date": scored.as_of_date, "customers": scored.customers,
        **{f"{band}_risk": scored.bands.get(band, 0) for band in ("high", "medium", "low")},
        "seconds": scored.seconds}])


def maintain(spark: SparkSession, settings: Settings) -> JobResult:
    from crm_lakehouse.maintain import maintain as run

    return JobResult("maintain", rows=[{"table": t.table, "files_compacted": t.files_removed,
                                        "files_written": t.files_added, "files_vacuumed": t.files_vacuumed,
                                        "seconds": round(t.seconds, 1)} for t in run(spark, settings)])


JOBS: dict[str, Callable[[SparkSession, Settings], JobResult]] = {
    "ingest_bronze": ingest_bronze,
    "build_silver": build_silver,
    "build_gold": build_gold,
    "train_churn": train_churn,
    "score_churn": score_churn,
    "maintain": maintain,
}


def get_job(name: str) -> Callable[[SparkSession, Settings], JobResult]:
    if name not in JOBS:
        import difflib

        close = difflib.get_close_matches(name, list(JOBS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown job '{name}'{hint}", where="crm-lakehouse job",
                          fix=f"use one of: {', '.join(JOBS)}")
    return JOBS[name]
