"""Where a short Spark process's CPU goes: the demo's jobs in a fresh JVM, CPU per kind of thread.

    .venv/bin/python bench/demo_cpu.py [--java-options "-XX:TieredStopAtLevel=1"] [--work DIR]

Runs what ``make demo`` runs (generate days 0 and 1, bronze, silver, gold, train, score; not
the summaries) into an empty lakehouse, then reads each thread's user + system time from
``/proc/<jvm pid>/task/*/stat``: the JIT compilers (C2, C1), the task threads, the thread that
serves Python's calls (planning, Delta's log), the rest. Java Flight Recorder samples Java
threads only, so it cannot show the compilers. ``--java-options`` replaces the embedded JVM's
options (``spark.EMBEDDED_JVM_OPTIONS``) for this run, to compare variants one after the other.
Appended to bench/results.jsonl.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import sql_latency  # noqa: E402  (a sibling script, not a package)
from batch import code_commit  # noqa: E402


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per kind of thread of process ``pid`` so far."""
    tick = os.sysconf("SC_CLK_TCK")
    seconds: collections.Counter = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended while we read
            continue
        kind = ("jit_c2" if name.startswith("C2 Compiler") else "jit_c1" if name.startswith("C1 Compiler")
                else "tasks" if name.startswith("Executor task") else "planning" if re.fullmatch(r"Thread-\d+", name)
                else "other")
        seconds[kind] += (int(fields[11]) + int(fields[12])) / tick
    return {kind: round(value, 1) for kind, value in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--java-options", help="the embedded JVM's options for this run (default: the project's)")
    parser.add_argument("--work", default=str(REPO / ".cache" / "bench" / "demo_cpu"), help="the lakehouse folder")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    from crm_lakehouse import spark as embedded
    from crm_lakehouse.churn.score import score_churn
    from crm_lakehouse.churn.train import train_churn
    from crm_lakehouse.config import load_settings
    from crm_lakehouse.generator import generate, make_plan
    from crm_lakehouse.gold.build import build_gold
    from crm_lakehouse.jobs import ingest_bronze
    from crm_lakehouse.silver.build import build_silver

    if args.java_options is not None:
        embedded.EMBEDDED_JVM_OPTIONS = args.java_options
    shutil.rmtree(args.work, ignore_errors=True)
    settings = load_settings(REPO / "conf", env="local", lakehouse=args.work)
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str, run) -> None:
        begun = time.monotonic()
        run()
        phases[name] = round(time.monotonic() - begun, 1)

    spark = embedded.build_spark_session(settings.spark, app_name="crm-lakehouse bench demo_cpu")
    pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    phase("generate", lambda: generate(spark, make_plan(settings), settings.landing, list(range(settings.generator.days))))
    phase("bronze", lambda: ingest_bronze(spark, settings))
    phase("silver", lambda: build_silver(spark, settings))
    phase("gold", lambda: build_gold(spark, settings))
    phase("train", lambda: train_churn(spark, settings))
    phase("score", lambda: score_churn(spark, settings))
    cpu = thread_cpu(pid)
    sql_latency.record({
        "benchmark": "demo_cpu", "java_options": args.java_options or embedded.EMBEDDED_JVM_OPTIONS,
        "total_s": round(time.monotonic() - started, 1), "phases_s": phases, "jvm_cpu_s": round(sum(cpu.values()), 1),
        "jvm_cpu_by_thread_s": cpu, "machine": sql_latency.machine(), "code_commit": code_commit(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
