"""Pipeline benchmark: how fast bronze -> silver -> gold runs at a scale, against the floor for
that data on this machine, and how good identity resolution and the churn model are there.

    .venv/bin/python bench/run.py --scale 1 [--days 2] [--work DIR] [--sql-runs 30]
    crm-lakehouse bench --scale 1                 # the same

All figures come from one run, in one embedded Spark session configured like `make demo`
(conf/env/local.yaml), with Spark's event log on so the slow stages can be read afterwards:

- ``copy_floor_s``: read every day-0 landing file with its source's reader and write it
  unchanged as Delta — what any pipeline over this data pays at least;
- ``full_s``: day 0 through bronze, silver and gold into an empty lakehouse;
  ``full_vs_floor`` = full_s / copy_floor_s;
- ``near_empty_s``: then a fixed-size increment (``--near-empty-rows``, 99 by default: the
  first records of day 2's files of JSON-lines customers, orders and interactions sources, a
  third each) through every layer — the fixed cost of a batch, comparable across scales;
- ``incr_s``: day 1 (one daily increment) through the same lakehouse; ``rebuild_s``: days 0
  and 1 into an empty lakehouse (what a naive job would redo); ``incr_vs_full`` = incr_s /
  full_s, ``incr_speedup`` = rebuild_s / incr_s; ``incr_customers_share``: customers the
  increment touched (gold's affected keys) / customers;
- ``rows_per_s_per_core``: day-0 source rows / full_s / cores;
- ``driver_peak_rss_mib``: peak resident memory of the driver JVM during the pipeline (in local
  mode the executors live in it too) and of the Python driver;
- identity precision/recall against the generator's ground truth, churn ROC AUC of the trained
  model and of the oracle (the true propensities) on the same validation snapshot;
- SQL endpoint p50/p95 of the customer lookup and the dashboard query (bench/sql_latency.py);
- ``spark_jobs``: from the event log, job seconds per kind of Spark job (Delta's description or
  the call site; jobs overlap, so they add up to more than the wall time) and the wall time in
  which no Spark job ran (driver-side work).

``--fixed-cost-only``: day 0, then the near-empty increment, nothing else — the figures that
are compared across scales (``"benchmark": "pipeline_fixed_cost"``).

Prints one JSON object and appends it to bench/results.jsonl with the machine, versions and
git commit. Generated landing data is kept in ``--work`` and reused by the next run at the
same seed and scale; the lakehouses are rebuilt each time.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import resource
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import sql_latency  # noqa: E402  (a sibling script, not a package)


def day_files(landing: Path, target: Path, days: list[int]) -> int:
    """Hard-link the listed days' export files (and the generator's metadata) into ``target``."""
    linked = 0
    for file in sorted(landing.rglob("*")):
        relative = file.relative_to(landing)
        if not file.is_file() or any(part.startswith("_") for part in relative.parts[:-1]):
            continue
        if any(f"_d{day:03d}_" in file.name for day in days):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            if not destination.exists():
                os.link(file, destination)
                linked += 1
    for meta in ("_manifest", "_ground_truth"):
        if not (target / meta).exists():
            shutil.copytree(landing / meta, target / meta)
    return linked


def day_slice(settings, landing: Path, day: int, rows: int, skip: int = 0) -> int:
    """A fixed-size increment, the same at every scale: the first records of ``day``'s files of
    the JSON-lines sources of each entity that changes customers (customers, orders,
    interactions; a third of ``rows`` each, source after source until it is reached), landed
    under the files' own names. Returns the records landed.

    Only change-feed and transaction sources qualify: a cut snapshot would read as deletes.
    ``skip`` starts at that line of each file instead, landed under a name of its own
    (``<name>_from<skip>``) so a file stream takes it as new.
    """
    entities = ("customers", "orders", "interactions")
    landed = 0
    for index, entity in enumerate(entities):
        wanted = rows // len(entities) + (1 if index < rows % len(entities) else 0)
        for source in settings.sources:
            if wanted == 0:
                break
            if source.entity != entity or source.format != "json" or source.mode == "snapshot":
                continue
            for file in sorted((landing / source.path).glob(f"*_d{day:03d}_*")):
                with file.open(encoding="utf-8") as records:
                    head = list(itertools.islice(records, skip, skip + wanted))
                stem, dot, suffix = file.name.rpartition(".")
                name = f"{stem}_from{skip}{dot}{suffix}" if skip else file.name
                destination = Path(settings.landing) / source.path / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_text("".join(head), encoding="utf-8")
                landed += len(head)
                wanted -= len(head)
                if wanted == 0:
                    break
    return landed


class PeakMemory:
    """Peak RSS of the driver JVM (VmHWM, reset at start) and of this Python process."""

    def __init__(self, spark):
        self.jvm_pid = spark.sparkContext._gateway.proc.pid

    def reset(self) -> None:
        # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so generation does not count.
        Path(f"/proc/{self.jvm_pid}/clear_refs").write_text("5")

    def read(self) -> dict:
        status = Path(f"/proc/{self.jvm_pid}/status").read_text().splitlines()
        hwm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        return {"driver_jvm_peak_rss_mib": round(hwm_kib / 1024),
                "driver_python_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def timed(step, *args) -> tuple[float, object]:
    started = time.monotonic()
    value = step(*args)
    return round(time.monotonic() - started, 1), value


def pipeline(spark, settings) -> dict:
    """bronze -> silver -> gold once; seconds per layer and what gold touched."""
    from crm_lakehouse.bronze.ingest import ingest_all
    from crm_lakehouse.gold.build import build_gold
    from crm_lakehouse.silver.build import build_silver

    bronze_s, ingested = timed(ingest_all, spark, settings)
    failed = [r.error for r in ingested if r.error]
    if failed:
        raise SystemExit(f"bench: ingest failed: {failed[0]}")
    silver_s, _ = timed(build_silver, spark, settings)
    gold_s, batches = timed(build_gold, spark, settings)
    return {"bronze_s": bronze_s, "silver_s": silver_s, "gold_s": gold_s,
            "total_s": round(bronze_s + silver_s + gold_s, 1),
            "source_rows": sum(r.rows_added for r in ingested),
            "affected_customers": sum(b.affected.get("customers", 0) for b in batches)}


def copy_floor(spark, settings, target: Path) -> dict:
    """Every source's landing files read by its reader and written unchanged as Delta."""
    from crm_lakehouse.bronze.ingest import landing_path, read_source_files

    rows = 0
    started = time.monotonic()
    for source in settings.sources:
        df = read_source_files(spark, source, landing_path(source, settings.landing))
        df.write.format("delta").mode("overwrite").save(str(target / source.name))
        rows += spark.read.format("delta").load(str(target / source.name)).count()
    return {"copy_floor_s": round(time.monotonic() - started, 1), "copy_floor_rows": rows}


def spark_job_profile(event_log_dir: Path, app_id: str, limit: int = 12) -> dict:
    """Where the Spark time went, from the event log: seconds per kind of job (Delta's job
    description, else the call site), and the wall time in which no job ran at all (the
    driver planning, reading Delta logs, or in Python)."""
    folder = next((p for p in event_log_dir.iterdir() if app_id in p.name), None)
    if folder is None:
        return {}
    # Spark 4 writes a rolling log: a folder of events_<n>_<app> files.
    files = sorted(folder.glob("events_*"), key=lambda f: int(f.name.split("_")[1])) if folder.is_dir() else [folder]
    started, kind, jobs, queries = {}, {}, [], {}
    for file in files:
        with file.open() as events:
            for line in events:
                event = json.loads(line)
                if event.get("Event", "").endswith("SparkListenerSQLExecutionStart"):
                    queries[str(event["executionId"])] = "SQL " + (event.get("description") or "?")
                elif event.get("Event") == "SparkListenerJobStart":
                    properties = event.get("Properties") or {}
                    started[event["Job ID"]] = event["Submission Time"]
                    what = (properties.get("spark.job.description") or properties.get("callSite.short")
                            or queries.get(properties.get("spark.sql.execution.id", ""), "?"))
                    kind[event["Job ID"]] = what.splitlines()[0][:80]
                elif event.get("Event") == "SparkListenerJobEnd" and event["Job ID"] in started:
                    jobs.append((started[event["Job ID"]], event["Completion Time"], kind[event["Job ID"]]))
    if not jobs:
        return {}
    jobs.sort()
    seconds, count = defaultdict(float), defaultdict(int)
    idle, busy_until = 0.0, jobs[0][1]
    for begin, end, what in jobs:
        seconds[what] += (end - begin) / 1000
        count[what] += 1
        idle += max(0, begin - busy_until) / 1000
        busy_until = max(busy_until, end)
    ranked = sorted(seconds.items(), key=lambda item: -item[1])[:limit]
    return {"jobs": len(jobs), "span_s": round((busy_until - jobs[0][0]) / 1000), "no_job_running_s": round(idle),
            "top": [{"what": what, "job_seconds": round(s, 1), "jobs": count[what]} for what, s in ranked]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, required=True, help="1.0 ~ 100k people and ~1M order lines")
    parser.add_argument("--days", type=int, default=3,
                        help="days generated; day 0 is the full run, day 1 the increment, day 2 the near-empty slice")
    parser.add_argument("--near-empty-rows", type=int, default=99, help="records in the near-empty increment")
    parser.add_argument("--work", default=str(REPO / ".cache" / "bench"), help="landing data and lakehouses")
    parser.add_argument("--sql-runs", type=int, default=30)
    parser.add_argument("--fixed-cost-only", action="store_true",
                        help="only day 0 and then the near-empty increment (no floor, day 1, rebuild, churn or SQL): "
                             "the figures compared across scales, in a fraction of the full benchmark's time")
    parser.add_argument("--interpreted-below-rows", type=int, default=None,
                        help="override spark.interpreted_below_rows (0: every batch compiled, as before it existed)")
    args = parser.parse_args(argv)
    if args.days < 3 and not args.fixed_cost_only:
        parser.error("--days must be at least 3 (day 0 for the full run, day 1 the increment, day 2 the near-empty one)")

    # MLflow resets its logger to this level on import; its INFO lines would bury the figures.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    import logging

    import delta
    import mlflow
    import pyspark

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    from crm_lakehouse.churn.train import train_churn
    from crm_lakehouse.config import join_path, load_settings
    from crm_lakehouse.generator import already_generated, generate, make_plan
    from crm_lakehouse.silver.summary import identity_quality
    from crm_lakehouse.spark import build_spark_session

    work = Path(args.work).resolve() / f"scale_{args.scale:g}"
    event_logs = work / "eventlog"
    for stale in ("floor", "full", "rebuild"):
        shutil.rmtree(work / stale, ignore_errors=True)
    event_logs.mkdir(parents=True, exist_ok=True)

    loaded = load_settings(REPO / "conf", env="local", lakehouse=str(work / "full"))
    if args.interpreted_below_rows is not None:
        loaded = dataclasses.replace(loaded, spark=dataclasses.replace(
            loaded.spark, interpreted_below_rows=args.interpreted_below_rows))

    def settings_at(root: Path):
        return dataclasses.replace(loaded, root=str(root), landing=str(root / "landing"),
                                   checkpoints=join_path(str(root), "_checkpoints"))

    generated = work / "landing"
    base = settings_at(work / "full")
    spark = build_spark_session(base.spark, app_name=f"crm-lakehouse bench scale {args.scale:g}", extra_conf={
        "spark.ui.enabled": "false", "spark.eventLog.enabled": "true", "spark.eventLog.dir": event_logs.as_uri(),
        "spark.eventLog.compress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    memory = PeakMemory(spark)

    plan = make_plan(base, scale=args.scale)
    # Days are generated independently: the fixed-cost run needs day 0 and day 2's slice only.
    days = [0, 2] if args.fixed_cost_only else list(range(args.days))
    missing = [d for d in days if not already_generated(spark, plan, str(generated), d)]
    generate_s, _ = timed(generate, spark, plan, str(generated), missing) if missing else (0.0, None)
    memory.reset()
    if args.fixed_cost_only:
        return fixed_cost(spark, memory, settings_at(work / "full"), generated, event_logs, args, generate_s)

    full = settings_at(work / "full")
    day_files(generated, Path(full.landing), [0])
    floor = copy_floor(spark, full, work / "floor")
    first = pipeline(spark, full)
    identity = identity_quality(spark, full)

    day_files(generated, Path(full.landing), days[1:2])
    increment = pipeline(spark, full)
    near_rows = day_slice(full, generated, 2, args.near_empty_rows)
    near = pipeline(spark, full)
    customers = spark.read.format("delta").load(full.table_path("gold", "customer_360")).count()

    train_s, trained = timed(train_churn, spark, full)

    rebuild = settings_at(work / "rebuild")
    day_files(generated, Path(rebuild.landing), days[:2])
    rebuilt = pipeline(spark, rebuild)
    peak = memory.read()
    app_id = spark.sparkContext.applicationId
    spark.stop()

    sql = sql_latency.measure(str(work / "full"), args.sql_runs)
    cores = os.cpu_count() or 1
    result = {
        "benchmark": "pipeline", "scale": args.scale, "days": args.days,
        "interpreted_below_rows": loaded.spark.interpreted_below_rows, "generate_s": generate_s,
        **floor,
        "full_s": first["total_s"], "full_layers_s": {k: first[k] for k in ("bronze_s", "silver_s", "gold_s")},
        "full_vs_floor": round(first["total_s"] / floor["copy_floor_s"], 2),
        "incr_s": increment["total_s"], "incr_layers_s": {k: increment[k] for k in ("bronze_s", "silver_s", "gold_s")},
        "near_empty_s": near["total_s"],
        "near_empty_layers_s": {k: near[k] for k in ("bronze_s", "silver_s", "gold_s")},
        "near_empty_source_rows": near["source_rows"], "near_empty_records_landed": near_rows,
        "rebuild_s": rebuilt["total_s"],
        "incr_vs_full": round(increment["total_s"] / first["total_s"], 3),
        "incr_speedup": round(rebuilt["total_s"] / increment["total_s"], 2),
        "day0_source_rows": first["source_rows"], "incr_source_rows": increment["source_rows"],
        "customers": customers, "incr_customers_touched": increment["affected_customers"],
        "incr_customers_share": round(increment["affected_customers"] / customers, 4) if customers else None,
        "rows_per_s_per_core": round(first["source_rows"] / first["total_s"] / cores),
        **peak,
        "identity_precision": round(identity["precision"], 4), "identity_recall": round(identity["recall"], 4),
        "churn_train_s": train_s, "churn_model": trained.candidate,
        "churn_roc_auc": round(trained.validation["roc_auc"], 4),
        "churn_oracle_roc_auc": round(trained.oracle_roc_auc, 4) if trained.oracle_roc_auc is not None else None,
        "sql": sql,
        "spark_jobs": spark_job_profile(event_logs, app_id),
        "machine": sql_latency.machine(),
        "versions": {"pyspark": pyspark.__version__, "delta_spark": _version("delta-spark"),
                     "mlflow": mlflow.__version__, "java": _java_version()},
        "git_commit": sql_latency.git_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    del delta  # imported only to fail early when the venv lacks it
    sql_latency.record(result)
    return 0


def fixed_cost(spark, memory: PeakMemory, full, generated: Path, event_logs: Path, args, generate_s: float) -> int:
    """Day 0 into an empty lakehouse, then the near-empty increment from day 2: what a batch costs
    whatever it carries, at this scale, and the driver's peak memory over both. Each figure is
    printed as it is measured, so a run stopped early still leaves the ones it reached."""

    def say(**figures) -> None:
        print("bench:", json.dumps(figures), file=sys.stderr, flush=True)

    say(generate_s=generate_s)
    day_files(generated, Path(full.landing), [0])
    first = pipeline(spark, full)
    say(full=first)
    near_rows = day_slice(full, generated, 2, args.near_empty_rows)
    near = pipeline(spark, full)
    say(near_empty=near)
    customers = spark.read.format("delta").load(full.table_path("gold", "customer_360")).count()
    peak = memory.read()
    app_id = spark.sparkContext.applicationId
    spark.stop()
    result = {
        "benchmark": "pipeline_fixed_cost", "scale": args.scale,
        "interpreted_below_rows": full.spark.interpreted_below_rows, "generate_s": generate_s,
        "full_s": first["total_s"], "full_layers_s": {k: first[k] for k in ("bronze_s", "silver_s", "gold_s")},
        "day0_source_rows": first["source_rows"], "customers": customers,
        "near_empty_s": near["total_s"], "near_empty_layers_s": {k: near[k] for k in ("bronze_s", "silver_s", "gold_s")},
        "near_empty_source_rows": near["source_rows"], "near_empty_records_landed": near_rows,
        **peak, "spark_jobs": spark_job_profile(event_logs, app_id), "machine": sql_latency.machine(),
        "git_commit": sql_latency.git_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    sql_latency.record(result)
    return 0


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _java_version() -> str:
    import subprocess

    out = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr
    return out.splitlines()[0] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
