"""``crm-lakehouse run --workflow NAME``: a workflow's jobs in dependency order, with retries,
timeouts, per-job timing and one status line per job.

Two launchers run a job. In-process (the default) calls the job function on this process's
SparkSession, like ``crm-lakehouse job``. ``spark-submit`` launches every job as its own
application through ``deploy/spark-submit/submit.sh`` — what a scheduler does on a cluster — and
a timeout kills the whole process group. Either way a failed job stops its dependents, and since
every job is idempotent, rerunning the workflow after a failure or a crash completes it.

Retried: unexpected failures (an exception, a lost executor, a killed or crashed application).
Not retried: errors a user must fix (bad config, no champion model — exit status 2) and jobs that
finished but reported failed items (a source that cannot be read). Under spark-submit that last
case exits 1 like a crashed Python driver does, so it is retried there: harmless, as every job
is idempotent, only slower.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crm_lakehouse.errors import LakehouseError
from crm_lakehouse.workflows import Task, Workflow

REPO_SUBMIT_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "spark-submit" / "submit.sh"


@dataclass
class Attempt:
    """How one attempt of a job ended."""

    ok: bool
    detail: str = ""
    retryable: bool = False
    rows: list[dict] | None = None


@dataclass
class TaskRun:
    job: str
    status: str            # ok | FAILED | TIMED OUT | skipped
    attempts: int
    seconds: float
    detail: str = ""


@dataclass
class WorkflowRun:
    workflow: str
    tasks: list[TaskRun]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(task.status == "ok" for task in self.tasks)

    @property
    def failed(self) -> list[TaskRun]:
        return [task for task in self.tasks if task.status in ("FAILED", "TIMED OUT")]


class InProcessLauncher:
    """Runs jobs on this process's SparkSession; a timeout cancels the job's Spark jobs."""

    def __init__(self, spark, settings, jobs: dict[str, Callable] | None = None) -> None:
        from crm_lakehouse.jobs import JOBS

        self.spark, self.settings, self.jobs = spark, settings, jobs or JOBS

    def __call__(self, task: Task) -> Attempt:
        outcome: dict = {}
        group = f"crm-{task.job}-{uuid.uuid4().hex[:8]}"

        def target() -> None:
            # The group is per thread (PySpark pins Python threads to JVM threads), so only this
            # job's Spark jobs are cancelled on a timeout.
            self.spark.sparkContext.setJobGroup(group, f"workflow job {task.job}", interruptOnCancel=True)
            try:
                outcome["result"] = self.jobs[task.job](self.spark, self.settings)
            except BaseException as error:  # reported below, never lost in the thread
                outcome["error"] = error

        worker = threading.Thread(target=target, name=group, daemon=True)
        worker.start()
        worker.join(None if task.timeout_seconds == float("inf") else task.timeout_seconds)
        if worker.is_alive():
            self.spark.sparkContext.cancelJobGroup(group)
            worker.join(60)
            # A job still running after the cancel would race a retry on the same tables.
            return Attempt(False, f"timed out after {task.timeout_seconds / 60:g} min"
                           + ("" if not worker.is_alive() else "; still running after cancel"), retryable=False)
        error = outcome.get("error")
        if isinstance(error, LakehouseError):
            return Attempt(False, error.line())
        if error is not None:
            first = (str(error).strip().splitlines() or [""])[0][:300]
            return Attempt(False, f"{type(error).__name__}: {first}", retryable=True)
        result = outcome["result"]
        return Attempt(result.ok, "; ".join(result.failed), rows=result.rows)


class SparkSubmitLauncher:
    """Runs every job as its own application through ``submit.sh``; a timeout kills it."""

    def __init__(self, job_args: list[str], *, env: dict[str, str] | None = None,
                 script: Path = REPO_SUBMIT_SCRIPT) -> None:
        self.job_args, self.env, self.script = job_args, {**os.environ, **(env or {})}, script

    def __call__(self, task: Task) -> Attempt:
        # Its own process group: a timeout or Ctrl-C takes down spark-submit's JVM and Python driver.
        process = subprocess.Popen(["bash", str(self.script), task.job, *self.job_args], env=self.env,
                                   start_new_session=True)
        try:
            code = process.wait(None if task.timeout_seconds == float("inf") else task.timeout_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            return Attempt(False, f"timed out after {task.timeout_seconds / 60:g} min (application killed)")
        except BaseException:
            _kill_group(process)
            raise
        if code == 0:
            return Attempt(True)
        if code == 2:
            return Attempt(False, "exit status 2 (an error to fix; its line is above)")
        return Attempt(False, f"exit status {code}" + (f" (signal {-code})" if code < 0 else ""), retryable=True)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def run_workflow(workflow: Workflow, launch: Callable[[Task], Attempt], *,
                 report: Callable[[str], None] = print, show_rows: Callable[[list[dict]], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> WorkflowRun:
    """Run every task once its upstreams succeeded; a failure skips everything downstream of it."""
    started = time.monotonic()
    runs: dict[str, TaskRun] = {}
    width = max(len(job) for job in workflow.tasks)
    total = len(workflow.tasks)
    report(f"workflow {workflow.name}: {' -> '.join(workflow.order)}")
    for position, (job, task) in enumerate(workflow.tasks.items(), start=1):
        prefix = f"[{position}/{total}] {job:<{width}}"
        blocked = [up for up in task.depends_on if runs[up].status != "ok"]
        if blocked:
            runs[job] = TaskRun(job, "skipped", 0, 0.0, f"{blocked[0]} did not succeed")
            report(f"{prefix}  skipped   ({blocked[0]} did not succeed)")
            continue
        job_started = time.monotonic()
        attempt_number = 0
        while True:
            attempt_number += 1
            attempt = launch(task)
            if attempt.ok or not attempt.retryable or attempt_number > task.retries:
                break
            report(f"{prefix}  retry {attempt_number}/{task.retries} in {task.retry_delay_seconds:g}s: {attempt.detail}")
            sleep(task.retry_delay_seconds)
        seconds = time.monotonic() - job_started
        status = "ok" if attempt.ok else "TIMED OUT" if attempt.detail.startswith("timed out") else "FAILED"
        runs[job] = TaskRun(job, status, attempt_number, seconds, attempt.detail)
        if show_rows and attempt.rows:
            show_rows(attempt.rows)
        tries = f" (attempt {attempt_number})" if attempt_number > 1 else ""
        report(f"{prefix}  {status:<9} {seconds:6.1f}s{tries}" + (f": {attempt.detail}" if not attempt.ok else ""))
    result = WorkflowRun(workflow.name, list(runs.values()), time.monotonic() - started)
    skipped = [t.job for t in result.tasks if t.status == "skipped"]
    if result.ok:
        report(f"workflow {workflow.name}: ok, {total} jobs in {result.seconds:.0f}s")
    else:
        report(f"workflow {workflow.name}: FAILED at {', '.join(t.job for t in result.failed)} after {result.seconds:.0f}s"
               + (f"; skipped: {', '.join(skipped)}" if skipped else ""))
    return result


def run_continuously(workflow: Workflow, launch: Callable[[Task], Attempt], *, cycles: int | None = None,
                     report: Callable[[str], None] = print, **kwargs) -> list[WorkflowRun]:
    """Rerun the workflow every ``trigger_seconds`` (a processing-time trigger) until stopped.

    Like Structured Streaming's ProcessingTime trigger, a cycle starts on the next interval
    boundary, or at once when the previous cycle overran it. SIGTERM (or ``cycles``) ends the
    loop after the running cycle, so no job is cut off mid-commit.
    """
    interval = workflow.trigger_seconds or 0
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if threading.current_thread() is threading.main_thread() else None
    runs: list[WorkflowRun] = []
    try:
        while not stop.is_set() and (cycles is None or len(runs) < cycles):
            cycle_started = time.monotonic()
            runs.append(run_workflow(workflow, launch, report=report, **kwargs))
            if cycles is not None and len(runs) >= cycles:
                break
            wait = interval - (time.monotonic() - cycle_started)
            if wait > 0:
                report(f"workflow {workflow.name}: next cycle in {wait:.0f}s (trigger every {interval:g}s)")
                stop.wait(wait)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return runs
