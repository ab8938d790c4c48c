"""One small batch through every layer of a benchmark's lakehouse, step by step: the fixed cost
of a batch, measured where it is paid.

    .venv/bin/python bench/batch.py --lakehouse .cache/bench/scale_1/full [--rows 99] [--skip 100]

``bench/run.py`` leaves the lakehouse of its full run behind (days 0, 1 and a near-empty day 2).
The first run of this script saves it as ``<lakehouse>.pristine``; every run restores it from
there, so each measures the same batch on the same tables. The batch is ``--rows`` records (a
third each of customers, orders and interactions) taken from line ``--skip`` of day 2's
JSON-lines files, landed under new file names, then bronze -> silver -> gold as the jobs run
them. Reported: seconds per layer, every step the layers log with its seconds (intermediates
computed, MERGEs), and the event log's profile (job seconds per kind of job, wall time with no
job running). Appended to bench/results.jsonl like the other benchmarks. Before the batch the
jobs run once over nothing new (``upgrade_s``), so a table or property this code adds to the
saved lakehouse is not charged to the batch. ``--maintained`` runs
the weekly ``maintain`` job first, so the batch meets tables clustered as in service (the
benchmark's own run never maintains them).

The lakehouse is restored in place because the streaming checkpoints name their files by
absolute path. To measure another commit's code on the same batch, put its ``lib`` first on
``PYTHONPATH``: the record names the commit the ``crm_lakehouse`` package came from.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import sql_latency  # noqa: E402  (a sibling script, not a package)
from run import day_slice, pipeline, spark_job_profile  # noqa: E402

# The steps the layers log: "<layer> batch N: <what> computed in 1.2s", "... MERGE into <table> in 3.4s"
# ("append to <table>" when the table held no rows yet).
_STEP = re.compile(r"batch \d+: (?:(?P<what>.+) computed|(?P<merge>(?:MERGE into|append to) \S+)) in (?P<s>[\d.]+)s")


class Steps(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: list[tuple[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = _STEP.search(record.getMessage())
        if found:
            self.seconds.append((found["what"] or found["merge"], float(found["s"])))


def restore(lakehouse: Path) -> Path:
    pristine = lakehouse.with_name(lakehouse.name + ".pristine")
    if not pristine.exists():
        subprocess.run(["cp", "-a", str(lakehouse), str(pristine)], check=True)
    shutil.rmtree(lakehouse, ignore_errors=True)
    subprocess.run(["cp", "-a", str(pristine), str(lakehouse)], check=True)
    return pristine


def code_commit() -> str:
    import crm_lakehouse

    repo = Path(crm_lakehouse.__file__).resolve().parents[2]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=repo).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "lib"], cwd=repo).returncode != 0
    return head + ("-dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lakehouse", required=True, help="a lakehouse bench/run.py left (e.g. .cache/bench/scale_1/full)")
    parser.add_argument("--rows", type=int, default=99, help="records in the batch")
    parser.add_argument("--skip", type=int, default=100, help="the first line of day 2's files taken")
    parser.add_argument("--maintained", action="store_true",
                        help="run the weekly maintain job (OPTIMIZE clusters the tables) before the batch, as a "
                             "lakehouse in service has had; its seconds are reported apart")
    parser.add_argument("--interpreted-below-rows", type=int, default=None,
                        help="override spark.interpreted_below_rows (0: every batch compiled)")
    args = parser.parse_args(argv)
    lakehouse = Path(args.lakehouse).resolve()
    generated = lakehouse.parent / "landing"
    made = lakehouse.with_name(lakehouse.name + ".pristine") if not lakehouse.exists() else lakehouse
    if not (made / "_checkpoints").is_dir() or not generated.is_dir():
        parser.error(f"{lakehouse} is not a lakehouse bench/run.py made (no _checkpoints, or no {generated})")

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    from crm_lakehouse.config import join_path, load_settings
    from crm_lakehouse.spark import build_spark_session

    restore(lakehouse)
    loaded = load_settings(REPO / "conf", env="local", lakehouse=str(lakehouse))
    settings = dataclasses.replace(loaded, root=str(lakehouse), landing=str(lakehouse / "landing"),
                                   checkpoints=join_path(str(lakehouse), "_checkpoints"))
    if args.interpreted_below_rows is not None:
        settings = dataclasses.replace(settings, spark=dataclasses.replace(
            settings.spark, interpreted_below_rows=args.interpreted_below_rows))
    event_logs = lakehouse.parent / "eventlog"
    event_logs.mkdir(exist_ok=True)
    spark = build_spark_session(settings.spark, app_name="crm-lakehouse bench batch", extra_conf={
        "spark.ui.enabled": "false", "spark.eventLog.enabled": "true", "spark.eventLog.dir": event_logs.as_uri(),
        "spark.eventLog.compress": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    # The jobs over nothing new first: they bring the saved lakehouse to this code's tables (a
    # new table filled, a new table property set), a one-off cost kept out of the batch's figures.
    upgraded = pipeline(spark, settings)
    landed = day_slice(settings, generated, 2, args.rows, skip=args.skip)
    steps = Steps()
    logging.getLogger("crm_lakehouse").addHandler(steps)
    logging.getLogger("crm_lakehouse").setLevel(logging.INFO)
    maintain_s = None
    if args.maintained:
        from crm_lakehouse.maintain import maintain

        started = time.monotonic()
        maintain(spark, settings)
        maintain_s = round(time.monotonic() - started, 1)
    layers = pipeline(spark, settings)
    app_id = spark.sparkContext.applicationId
    spark.stop()
    sql_latency.record({
        "benchmark": "batch", "lakehouse": str(lakehouse.relative_to(REPO) if lakehouse.is_relative_to(REPO) else lakehouse),
        "upgrade_s": upgraded["total_s"], "maintained_first_s": maintain_s,
        "interpreted_below_rows": settings.spark.interpreted_below_rows, "records_landed": landed, **layers, "steps": [{"what": w, "s": s} for w, s in steps.seconds],
        "spark_jobs": spark_job_profile(event_logs, app_id), "machine": sql_latency.machine(),
        "code_commit": code_commit(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
