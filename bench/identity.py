"""Identity benchmark: the exact keys silver links by today against them plus the probabilistic
model's links (crm_lakehouse.silver.linkage), on typo-rich generator data.

    .venv/bin/python bench/identity.py --scale 0.01 [--typo-rate 0.05] [--link-weight 12]

Day 0 is generated with every typing error (generator/typos.py) at ``--typo-rate`` and taken
through bronze and silver. Against the generator's ground truth, for the records current in
``silver.customers_history``: pairwise precision, recall and F1 and the share of people whose
records form exactly one cluster, for silver's identity map (the exact keys) and for the same
links plus every pair the model scores at ``--link-weight`` or above; the model's training and
scoring seconds and the candidate pairs it compared. Appends one JSON line to
bench/results.jsonl. The model does not run inside the silver batch yet (issue 18).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO))

import sql_latency  # noqa: E402  (a sibling script, not a package)


def clusters_exact(links: list[tuple[str, str]], truth: dict[str, str]) -> float:
    """The share of people whose records are exactly one cluster (none missing, no stranger)."""
    from crm_lakehouse.silver.linkage import clusters

    found = {frozenset(members) for members in clusters(links, truth)}
    people = clusters((), truth, by=truth)
    return sum(frozenset(members) in found for members in people) / len(people)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--typo-rate", type=float, default=0.05, help="the rate of every typing error")
    parser.add_argument("--link-weight", type=float, default=12.0, help="the match weight at which a pair links")
    parser.add_argument("--work", default=str(REPO / ".cache" / "bench"))
    args = parser.parse_args(argv)

    from pyspark.sql import functions as F

    from crm_lakehouse.bronze.ingest import ingest_all
    from crm_lakehouse.config import join_path, load_settings
    from crm_lakehouse.generator import GROUND_TRUTH_DIR, generate, make_plan
    from crm_lakehouse.generator.typos import TYPO_DEFECTS
    from crm_lakehouse.silver import linkage
    from crm_lakehouse.silver.build import build_silver
    from crm_lakehouse.spark import build_spark_session

    work = Path(args.work) / f"identity_scale_{args.scale:g}_typos_{args.typo_rate:g}"
    root = work / "lakehouse"
    loaded = load_settings(REPO / "conf", env="local", lakehouse=str(root))
    rates = {**loaded.generator.defect_rates, **dict.fromkeys(TYPO_DEFECTS, args.typo_rate)}
    settings = dataclasses.replace(loaded, landing=str(work / "landing"), checkpoints=join_path(str(root), "_checkpoints"),
                                   generator=dataclasses.replace(loaded.generator, defect_rates=rates))
    spark = build_spark_session(settings.spark, app_name="crm-lakehouse identity bench",
                                extra_conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    if not (work / "landing" / GROUND_TRUTH_DIR).exists():
        generate(spark, make_plan(settings, scale=args.scale), settings.landing, [0])
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    ingest_all(spark, settings)
    build_silver(spark, settings)
    silver_s = round(time.monotonic() - started, 1)

    current = spark.read.format("delta").load(settings.table_path("silver", "customers_history")) \
        .where("is_current AND operation <> 'delete'")
    truth = {f"{r.source}:{r.source_customer_id}": r.person_id for r in
             spark.read.parquet(str(work / "landing" / GROUND_TRUTH_DIR / "customer_records"))
             .join(current.select("source", "source_customer_id"), ["source", "source_customer_id"], "left_semi")
             .collect()}
    golden: dict[str, list[str]] = {}
    for row in spark.read.format("delta").load(settings.table_path("silver", "customer_identity_map")) \
            .where(~F.col("is_deleted")).collect():
        record = f"{row.source}:{row.source_customer_id}"
        if record in truth:
            golden.setdefault(row.customer_id, []).append(record)
    hard = [(members[0], other) for members in golden.values() for other in members[1:]]

    records = linkage.linkage_records(current, linkage.nickname_table(spark)).toPandas()
    started = time.monotonic()
    model = linkage.train_pinned(records)
    train_s = round(time.monotonic() - started, 1)
    started = time.monotonic()
    pairs = linkage.score(model, records)
    score_s = round(time.monotonic() - started, 1)
    linked = pairs[pairs.match_weight >= args.link_weight]
    both = hard + list(zip(linked.unique_id_l, linked.unique_id_r))

    def figures(links):
        quality = linkage.pairwise_quality(links, truth)
        return {"precision": round(quality["precision"], 4), "recall": round(quality["recall"], 4),
                "f1": round(quality["f1"], 4), "people_exactly_clustered": round(clusters_exact(links, truth), 4)}

    result = {
        "benchmark": "identity", "scale": args.scale, "typo_rate": args.typo_rate, "link_weight": args.link_weight,
        "records": len(truth), "people": len(set(truth.values())),
        "true_pairs": linkage.pairwise_quality([], truth)["true_pairs"],
        "bronze_silver_s": silver_s, "exact_keys": figures(hard), "exact_keys_and_model": figures(both),
        "model_train_s": train_s, "model_score_s": score_s, "candidate_pairs": len(pairs),
        "machine": sql_latency.machine(), "git_commit": sql_latency.git_commit(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    sql_latency.record(result)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
