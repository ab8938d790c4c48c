"""Identity benchmark: silver's identity resolution with the exact keys only against the same
with the matching model, through the real silver batch, on typo-rich generator data.

    .venv/bin/python bench/identity.py --scale 1 [--typo-rate 0.05] [--link-at 10]

Days 0 and 1 are generated with every typing error (generator/typos.py) and Chinese customers'
records in pinyin in another region's system (``cross_script``), each at ``--typo-rate``. Two
lakehouses take them through bronze and silver, one batch per day: one with
``silver.identity.probabilistic.enabled: false`` (the exact keys), one with the model (trained by
the day-0 batch, kept for day 1). Against the generator's ground truth, for the records current
after day 1: pairwise precision, recall and F1 and the share of people whose records form exactly
one cluster; per batch with the model, the records it rescored, the candidate pairs it scored and
the seconds it took to get (train) the model and to score; each silver batch's seconds. Appends
one JSON line to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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


def with_matching(settings, **changes):
    identity = settings.silver.identity
    matching = dataclasses.replace(identity.probabilistic, **changes)
    return dataclasses.replace(settings, silver=dataclasses.replace(
        settings.silver, identity=dataclasses.replace(identity, probabilistic=matching)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, required=True)
    parser.add_argument("--typo-rate", type=float, default=0.05, help="the rate of every typing error")
    parser.add_argument("--link-at", type=float, default=None, help="the match weight at which a pair links")
    parser.add_argument("--work", default=str(REPO / ".cache" / "bench"))
    parser.add_argument("--without-exact-keys-run", action="store_true",
                        help="skip the lakehouse with the exact keys only (half the time at scale 1)")
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
    loaded = load_settings(REPO / "conf", env="local", lakehouse=str(work / "unused"))
    rates = {**loaded.generator.defect_rates, **dict.fromkeys((*TYPO_DEFECTS, "cross_script"), args.typo_rate)}
    generating = dataclasses.replace(loaded, generator=dataclasses.replace(loaded.generator, defect_rates=rates))
    spark = build_spark_session(loaded.spark, app_name="crm-lakehouse identity bench",
                                extra_conf={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    landing = work / "landing"
    if not (landing / "_manifest" / "day=1").exists():  # (an older run of this bench generated day 0 only)
        shutil.rmtree(landing, ignore_errors=True)
        generate(spark, make_plan(generating, scale=args.scale), str(landing), [0, 1])
    threshold = {} if args.link_at is None else {"link_at": args.link_at}

    def run(name: str, settings) -> tuple[dict, list]:
        root = work / name
        shutil.rmtree(root, ignore_errors=True)
        settings = dataclasses.replace(settings, root=str(root), landing=str(root / "landing"),
                                       checkpoints=join_path(str(root), "_checkpoints"))
        batches = []
        for day in (0, 1):
            for file in landing.rglob(f"*_d{day:03d}_*"):
                if not any(part.startswith("_") for part in file.relative_to(landing).parts[:-1]):
                    target = root / "landing" / file.relative_to(landing)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, target)
            ingest_all(spark, settings)
            started = time.monotonic()
            [batch] = build_silver(spark, settings)
            batches.append({"day": day, "silver_s": round(time.monotonic() - started, 1), **batch.identity})
        current = spark.read.format("delta").load(settings.table_path("silver", "customers_history")) \
            .where("is_current").select("source", "source_customer_id")
        ids = {f"{r.source}:{r.source_customer_id}": r.customer_id for r in
               spark.read.format("delta").load(settings.table_path("silver", "customer_identity_map"))
               .join(current, ["source", "source_customer_id"], "left_semi").collect()}
        return ids, batches

    model_ids, model_batches = run("with_model", with_matching(loaded, **threshold))
    exact_ids, exact_batches = ({}, []) if args.without_exact_keys_run else \
        run("exact_keys", with_matching(loaded, enabled=False))
    truth = {f"{r.source}:{r.source_customer_id}": r.person_id
             for r in spark.read.parquet(str(landing / GROUND_TRUTH_DIR / "customer_records")).collect()
             if f"{r.source}:{r.source_customer_id}" in model_ids}

    def figures(ids: dict[str, str]) -> dict:
        groups: dict[str, list[str]] = {}
        for record, customer in ids.items():
            if record in truth:
                groups.setdefault(customer, []).append(record)
        links = [(members[0], other) for members in groups.values() for other in members[1:]]
        quality = linkage.pairwise_quality(links, truth)
        return {"precision": round(quality["precision"], 4), "recall": round(quality["recall"], 4),
                "f1": round(quality["f1"], 4), "people_exactly_clustered": round(clusters_exact(links, truth), 4)}

    model_root = work / "with_model"
    stored = spark.read.format("delta").load(str(model_root / "silver" / "identity_model")) \
        .orderBy(F.col("version").desc()).first()
    result = {
        "benchmark": "identity", "scale": args.scale, "typo_rate": args.typo_rate,
        "link_at": args.link_at or loaded.silver.identity.probabilistic.link_at,
        "records": len(truth), "people": len(set(truth.values())),
        "true_pairs": linkage.pairwise_quality([], truth)["true_pairs"],
        "exact_keys": {**figures(exact_ids), "batches": exact_batches} if exact_ids else None,
        "exact_keys_and_model": {**figures(model_ids), "batches": model_batches},
        "learned_weights": learned_weights(json.loads(stored.model)),
        "machine": sql_latency.machine(), "git_commit": sql_latency.git_commit(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    sql_latency.record(result)
    spark.stop()
    return 0


def learned_weights(model: dict) -> dict[str, dict[str, float]]:
    """Comparison -> level -> its match weight (log2 of m/u), as the model learned them."""
    import math

    weights = {}
    for comparison in model["splink"]["comparisons"]:
        levels = {}
        for level in comparison["comparison_levels"]:
            m, u = level.get("m_probability"), level.get("u_probability")
            if m and u:
                levels[level.get("label_for_charts", "?")] = round(math.log2(m / u), 2)
        weights[comparison["output_column_name"]] = levels
    return weights


if __name__ == "__main__":
    sys.exit(main())
