"""conf/workflows.yaml and the runner: validation with one-line errors, dependency order,
retries, timeouts, and a failed job stopping its dependents."""

from __future__ import annotations

import shutil

import pytest

from crm_lakehouse.errors import ConfigError
from crm_lakehouse.runner import Attempt, InProcessLauncher, run_continuously, run_workflow
from crm_lakehouse.workflows import Task, Workflow, load_workflows
from tests.conftest import REPO
from tests.test_cli import assert_one_line_error, run_cli

JOBS = ["ingest_bronze", "build_silver", "build_gold", "train_churn", "score_churn", "maintain"]


def write_workflows(tmp_path, text: str):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "workflows.yaml").write_text(text, encoding="utf-8")
    return conf


def test_the_repository_workflows_are_the_documented_graphs():
    workflows = load_workflows(REPO / "conf")
    daily, weekly, continuous = workflows["daily"], workflows["weekly"], workflows["continuous"]
    assert daily.order == ["ingest_bronze", "build_silver", "build_gold", "score_churn"]
    assert daily.edges == {("ingest_bronze", "build_silver"), ("build_silver", "build_gold"), ("build_gold", "score_churn")}
    assert (daily.cron, daily.timezone) == ("30 5 * * *", "Asia/Shanghai")
    assert weekly.order == ["train_churn", "score_churn", "maintain"]
    assert weekly.tasks["train_churn"].timeout_seconds == 240 * 60 and weekly.tasks["maintain"].retries == 1
    assert continuous.cron is None and continuous.trigger_seconds == 300
    assert continuous.order == ["ingest_bronze", "build_silver", "build_gold"]
    assert daily.tasks["build_gold"].retries == 2 and daily.tasks["build_gold"].retry_delay_seconds == 60


def test_a_cycle_is_rejected_with_its_path(tmp_path):
    conf = write_workflows(tmp_path, """
workflows:
  daily:
    schedule: {cron: "0 5 * * *", timezone: UTC}
    jobs:
      ingest_bronze: {depends_on: [build_gold]}
      build_silver: {depends_on: [ingest_bronze]}
      build_gold: {depends_on: [build_silver]}
""")
    with pytest.raises(ConfigError) as error:
        load_workflows(conf, known_jobs=JOBS)
    assert "dependency cycle ingest_bronze -> build_gold -> build_silver -> ingest_bronze" in str(error.value)
    # The CLI says it in one line, before any Spark starts.
    result = run_cli("run", "--workflow", "daily", "--conf", str(conf), cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "workflows.yaml: workflows.daily.jobs", "dependency cycle", "fix:")


@pytest.mark.parametrize(("jobs", "fragments"), [
    ("build_silvr: {}", ["unknown job 'build_silvr' in workflow 'daily'", "did you mean 'build_silver'"]),
    ("build_gold: {depends_on: [build_silver]}", ["depends on 'build_silver', which is not a job of workflow 'daily'"]),
    ("build_gold: {retries: -1}", ["'workflows.daily.jobs.build_gold.retries' is -1"]),
    ("build_gold: {retrys: 3}", ["unknown key 'workflows.daily.jobs.build_gold.retrys'", "did you mean 'retries'"]),
])
def test_bad_jobs_are_rejected_naming_the_key(tmp_path, jobs, fragments):
    conf = write_workflows(tmp_path, f"""
workflows:
  daily:
    schedule: {{cron: "0 5 * * *", timezone: UTC}}
    jobs:
      {jobs}
""")
    with pytest.raises(ConfigError) as error:
        load_workflows(conf, known_jobs=JOBS)
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize(("timing", "fragment"), [
    ('schedule: {cron: "0 5 * *", timezone: UTC}', "is not a five-field cron expression"),
    ('schedule: {cron: "0 5 * * *", timezone: Europe/Atlantis}', "unknown timezone 'Europe/Atlantis'"),
    ("trigger: {processing_time: soon}", "'soon' is not a duration"),
    ("{}", "needs exactly one of `schedule:` and `trigger:`"),
])
def test_bad_schedules_are_rejected(tmp_path, timing, fragment):
    timing = timing if timing != "{}" else "description: no timing"
    conf = write_workflows(tmp_path, f"""
workflows:
  fast:
    {timing}
    jobs:
      ingest_bronze: {{}}
""")
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace("*", r"\*")):
        load_workflows(conf, known_jobs=JOBS)


def test_unknown_workflow_is_one_line(tmp_path):
    result = run_cli("run", "--workflow", "daly", cwd=tmp_path)
    assert_one_line_error(result, "unknown workflow 'daly'", "did you mean 'daily'", "fix: use one of: daily, weekly, continuous")


def graph(**depends_on: list[str]) -> Workflow:
    tasks = {job: Task(job, tuple(ups), retries=2, retry_delay_seconds=0, timeout_seconds=float("inf"))
             for job, ups in depends_on.items()}
    return Workflow("test", "", "0 5 * * *", "UTC", None, tasks)


class Script:
    """A launcher that plays back prepared attempts per job and records the calls."""

    def __init__(self, **attempts: list[Attempt]) -> None:
        self.attempts, self.calls = attempts, []

    def __call__(self, task: Task) -> Attempt:
        self.calls.append(task.job)
        queue = self.attempts.get(task.job, [])
        return queue.pop(0) if queue else Attempt(True)


def test_a_failure_is_retried_then_stops_only_its_dependents():
    workflow = graph(a=[], b=["a"], c=["b"], d=["a"], e=["c", "d"])
    script = Script(b=[Attempt(False, "executor lost", retryable=True)] * 3)
    lines: list[str] = []
    result = run_workflow(workflow, script, report=lines.append)
    assert script.calls == ["a", "b", "b", "b", "d"]  # 1 try + 2 retries; c and e skipped, d independent
    assert [(t.job, t.status, t.attempts) for t in result.tasks] == [
        ("a", "ok", 1), ("b", "FAILED", 3), ("c", "skipped", 0), ("d", "ok", 1), ("e", "skipped", 0)]
    assert not result.ok
    assert any(line.startswith("[2/5] b  retry 1/2") for line in lines)
    assert lines[-1].startswith("workflow test: FAILED at b") and lines[-1].endswith("skipped: c, e")


def test_a_user_error_is_not_retried_and_a_flaky_job_recovers():
    workflow = graph(a=[], b=["a"])
    script = Script(a=[Attempt(False, "boom", retryable=True)], b=[Attempt(False, "no champion model")])
    result = run_workflow(workflow, script, report=lambda line: None)
    assert script.calls == ["a", "a", "b"]
    assert [(t.status, t.attempts) for t in result.tasks] == [("ok", 2), ("FAILED", 1)]


def test_a_triggered_workflow_runs_a_cycle_per_interval():
    workflow = Workflow("fast", "", None, "UTC", 0.3, graph(a=[]).tasks)
    script, lines = Script(), []
    runs = run_continuously(workflow, script, cycles=3, report=lines.append)
    assert len(runs) == 3 and script.calls == ["a", "a", "a"]
    # Between cycles the runner waits for the next trigger (none after the last cycle).
    assert len([line for line in lines if "next cycle in" in line and "trigger every 0.3s" in line]) == 2


def test_in_process_timeout_cancels_the_jobs_spark_work(spark, base_settings):
    def endless(session, settings):
        session.range(10**12).selectExpr("sum(id % 7)").collect()  # hours of work, no overflow

    def quick(session, settings):
        from crm_lakehouse.jobs import JobResult

        return JobResult("quick", rows=[{"n": session.range(5).count()}])

    workflow = Workflow("t", "", "0 5 * * *", "UTC", None, {
        "endless": Task("endless", (), retries=3, retry_delay_seconds=0, timeout_seconds=3),
        "quick": Task("quick", (), retries=0, retry_delay_seconds=0, timeout_seconds=float("inf"))})
    launcher = InProcessLauncher(spark, base_settings, jobs={"endless": endless, "quick": quick})
    result = run_workflow(workflow, launcher, report=lambda line: None)
    [timed_out, fine] = result.tasks
    assert (timed_out.status, timed_out.attempts) == ("TIMED OUT", 1)  # never retried over a live job
    assert "still running" not in timed_out.detail
    assert fine.status == "ok"  # the session survives the cancel
