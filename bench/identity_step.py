"""The probabilistic identity step of a first load, alone: train the matching model on every live
record of a lakehouse's silver and score all their candidate pairs, as a day-0 silver batch does.

    .venv/bin/python bench/identity_step.py --lakehouse .cache/bench/scale_1/full.pristine

The records' compared fields are derived with Spark from silver.customers_history exactly as the
batch derives them and stored in the driver's DuckDB a slice at a time (``features_s``); then, with
Spark stopped, the model is trained (``train_s``),
every candidate pair scored (``score_s``) and the pairs counted (``count_s``) on Splink's DuckDB
backend, as in the batch. ``identity_s`` is the three together. ``python_peak_rss_mib`` is this
process's peak resident memory after each phase (the driver's share of the pipeline's Python
peak: DuckDB's tables in the same process, the scored pairs). ``scored_sha256`` digests the
scored pairs and their weights, so two commits' runs show whether they scored alike. Appended to
bench/results.jsonl. To measure another commit's code on the same records, put its ``lib`` first
on ``PYTHONPATH``: the record names the commit the ``crm_lakehouse`` package came from.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import sql_latency  # noqa: E402  (a sibling script, not a package)
from batch import code_commit  # noqa: E402


def features(lakehouse: Path):
    """The live records' linkage fields (stored in a DuckDB connection, as the batch stores them),
    and the seconds Spark took for them."""
    from crm_lakehouse.config import load_settings
    from crm_lakehouse.silver import linkage_db, linkage_fields, matching
    from crm_lakehouse.spark import build_spark_session

    settings = load_settings(REPO / "conf", env="local", lakehouse=str(lakehouse))
    identity = settings.silver.identity
    spark = build_spark_session(settings.spark, app_name="crm-lakehouse bench identity step",
                                extra_conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    started = time.monotonic()
    history = spark.read.format("delta").load(str(lakehouse / "silver" / "customers_history"))
    comparable = matching.comparable(matching.current_profiles(history), blocked_emails=identity.blocked_emails,
                                     blocked_phones=identity.blocked_phones, cap=identity.max_records_per_identifier)
    live = linkage_fields.linkage_records(comparable, linkage_fields.nickname_table(spark)).localCheckpoint()
    records = linkage_db.store(linkage_db.connect(identity.probabilistic.scoring_memory), "records", live)
    seconds = time.monotonic() - started
    spark.stop()
    return records, seconds, identity.probabilistic.review_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lakehouse", required=True, help="a lakehouse with silver.customers_history")
    args = parser.parse_args(argv)
    lakehouse = Path(args.lakehouse).resolve()
    if not (lakehouse / "silver" / "customers_history" / "_delta_log").is_dir():
        parser.error(f"{lakehouse} has no silver.customers_history: run bench/run.py or bench/identity.py first")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    from crm_lakehouse.silver import linkage

    peak = {}

    def peak_after(phase: str) -> None:
        peak[phase] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    records, features_s, review_from = features(lakehouse)
    peak_after("features")
    started = time.monotonic()
    model = linkage.train_pinned(records)
    train_s = time.monotonic() - started
    peak_after("train")
    started = time.monotonic()
    scored = linkage.score(model, records, threshold_match_weight=review_from)
    score_s = time.monotonic() - started
    peak_after("score")
    started = time.monotonic()
    pairs = linkage.candidate_pairs(records)
    count_s = time.monotonic() - started
    peak_after("count")
    digest = hashlib.sha256()
    for left, right, weight in sorted(zip(scored["unique_id_l"], scored["unique_id_r"], scored["match_weight"])):
        digest.update(f"{left}|{right}|{weight:.9f}\n".encode())
    sql_latency.record({
        "benchmark": "identity_step", "lakehouse": str(lakehouse.relative_to(REPO) if lakehouse.is_relative_to(REPO)
                                                       else lakehouse),
        "records": len(records), "candidate_pairs": pairs, "scored_from_review_weight": len(scored),
        "features_s": round(features_s, 1), "train_s": round(train_s, 1), "score_s": round(score_s, 1),
        "count_s": round(count_s, 1), "identity_s": round(train_s + score_s + count_s, 1),
        "python_peak_rss_mib": peak, "scored_sha256": digest.hexdigest(), "machine": sql_latency.machine(), "code_commit": code_commit(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
