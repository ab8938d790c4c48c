"""``conf/workflows.yaml``: the one job graph that the local runner, spark-submit, Airflow,
Databricks and Kubernetes all follow.

A workflow names jobs from :data:`crm_lakehouse.jobs.JOBS`, their dependencies, a schedule
(cron + timezone) or, for near-real-time, a processing-time trigger, and per-job retries and
timeouts. Loading validates everything a scheduler would only discover at 3 a.m.: unknown jobs
or keys, dependencies outside the workflow, cycles (named with their path), bad cron fields
and timezones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from crm_lakehouse.config import resolve_conf_dir
from crm_lakehouse.config.checks import did_you_mean, read_yaml, reject_unknown
from crm_lakehouse.config.checks import timezone as checked_timezone
from crm_lakehouse.errors import ConfigError

WORKFLOWS_FILE = "workflows.yaml"
_JOB_KEYS = {"depends_on", "retries", "retry_delay_seconds", "timeout_minutes"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(second|minute|hour)s?\s*$")
_CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


@dataclass(frozen=True)
class Task:
    """One job in a workflow and how the runner treats it."""

    job: str
    depends_on: tuple[str, ...]
    retries: int
    retry_delay_seconds: float
    timeout_seconds: float


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str
    cron: str | None              # None for a triggered (continuous) workflow
    timezone: str
    trigger_seconds: float | None  # processing-time trigger of a continuous workflow
    tasks: dict[str, Task]         # in a dependency order: every task after its upstreams

    @property
    def order(self) -> list[str]:
        return list(self.tasks)

    @property
    def edges(self) -> set[tuple[str, str]]:
        """(upstream, downstream) pairs: what a scheduler's DAG must reproduce."""
        return {(up, task.job) for task in self.tasks.values() for up in task.depends_on}


def workflows_path(conf_dir: str | Path | None = None) -> Path:
    return resolve_conf_dir(conf_dir) / WORKFLOWS_FILE


def load_workflows(conf_dir: str | Path | None = None, *, known_jobs: list[str] | None = None) -> dict[str, Workflow]:
    """Every workflow of ``conf/workflows.yaml``, validated.

    Args:
        conf_dir: the config folder (as for the other config files).
        known_jobs: the job names a workflow may use; default: the jobs this package defines.
    """
    if known_jobs is None:
        from crm_lakehouse.jobs import JOBS

        known_jobs = list(JOBS)
    path = workflows_path(conf_dir)
    raw = read_yaml(path)
    where = str(path)
    reject_unknown(raw, {"defaults", "workflows"}, where, "")
    defaults = raw.get("defaults") or {}
    reject_unknown(defaults, _JOB_KEYS - {"depends_on"}, where, "defaults.")
    workflows = raw.get("workflows")
    if not isinstance(workflows, dict) or not workflows:
        raise ConfigError("no workflows defined", where=f"{where}: workflows",
                          fix="add `workflows:` with at least one named workflow and its jobs")
    return {name: _workflow(str(name), spec, defaults, known_jobs, where) for name, spec in workflows.items()}


def get_workflow(name: str, conf_dir: str | Path | None = None) -> Workflow:
    workflows = load_workflows(conf_dir)
    if name not in workflows:
        raise ConfigError(f"unknown workflow '{name}'{did_you_mean(name, list(workflows))}",
                          where=str(workflows_path(conf_dir)), fix=f"use one of: {', '.join(workflows)}")
    return workflows[name]


def _workflow(name: str, spec: object, defaults: dict, known_jobs: list[str], where: str) -> Workflow:
    key = f"workflows.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(f"'{key}' is not a mapping", where=f"{where}: {key}", fix="give it `schedule:` or `trigger:` and `jobs:`")
    reject_unknown(spec, {"description", "schedule", "trigger", "jobs"}, where, f"{key}.")
    cron, timezone, trigger = _timing(spec, where, key)
    jobs = spec.get("jobs")
    if not isinstance(jobs, dict) or not jobs:
        raise ConfigError(f"workflow '{name}' has no jobs", where=f"{where}: {key}.jobs", fix="list its jobs under `jobs:`")
    tasks: dict[str, Task] = {}
    for job, options in jobs.items():
        job_key = f"{key}.jobs.{job}"
        if job not in known_jobs:
            raise ConfigError(f"unknown job '{job}' in workflow '{name}'{did_you_mean(str(job), known_jobs)}",
                              where=f"{where}: {job_key}", fix=f"use one of: {', '.join(known_jobs)}")
        options = options or {}
        if not isinstance(options, dict):
            raise ConfigError(f"'{job_key}' is not a mapping", where=f"{where}: {job_key}",
                              fix="give it `depends_on:`, `retries:`, `retry_delay_seconds:`, `timeout_minutes:` or `{}`")
        reject_unknown(options, _JOB_KEYS, where, f"{job_key}.")
        merged = {**defaults, **options}
        upstream = merged.get("depends_on") or []
        if isinstance(upstream, str):
            upstream = [upstream]
        for dependency in upstream:
            if dependency not in jobs:
                raise ConfigError(f"job '{job}' depends on '{dependency}', which is not a job of workflow '{name}'"
                                  f"{did_you_mean(str(dependency), list(jobs))}", where=f"{where}: {job_key}.depends_on",
                                  fix=f"depend on one of: {', '.join(j for j in jobs if j != job)}")
        tasks[job] = Task(
            job=job,
            depends_on=tuple(upstream),
            retries=_number(merged, "retries", 0, where, job_key, integer=True),
            retry_delay_seconds=_number(merged, "retry_delay_seconds", 0, where, job_key),
            timeout_seconds=_number(merged, "timeout_minutes", 0, where, job_key) * 60 or float("inf"),
        )
    order = _dependency_order(tasks, where, f"{key}.jobs")
    return Workflow(name=name, description=str(spec.get("description", "")), cron=cron, timezone=timezone,
                    trigger_seconds=trigger, tasks={job: tasks[job] for job in order})


def _timing(spec: dict, where: str, key: str) -> tuple[str | None, str, float | None]:
    schedule, trigger = spec.get("schedule"), spec.get("trigger")
    if (schedule is None) == (trigger is None):
        raise ConfigError(f"workflow '{key.split('.', 1)[1]}' needs exactly one of `schedule:` and `trigger:`",
                          where=f"{where}: {key}",
                          fix="batch: `schedule: {cron: \"0 5 * * *\", timezone: UTC}`; near-real-time: "
                              "`trigger: {processing_time: 5 minutes}`")
    if trigger is not None:
        if not isinstance(trigger, dict):
            raise ConfigError(f"'{key}.trigger' is not a mapping", where=f"{where}: {key}.trigger",
                              fix="write `trigger: {processing_time: 5 minutes}`")
        reject_unknown(trigger, {"processing_time"}, where, f"{key}.trigger.")
        return None, "UTC", _duration(trigger.get("processing_time"), where, f"{key}.trigger.processing_time")
    if not isinstance(schedule, dict):
        raise ConfigError(f"'{key}.schedule' is not a mapping", where=f"{where}: {key}.schedule",
                          fix="write `schedule: {cron: \"0 5 * * *\", timezone: UTC}`")
    reject_unknown(schedule, {"cron", "timezone"}, where, f"{key}.schedule.")
    cron = str(schedule.get("cron", ""))
    fields = cron.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ConfigError(f"'{cron}' is not a five-field cron expression", where=f"{where}: {key}.schedule.cron",
                          fix="use minute hour day-of-month month day-of-week, e.g. \"0 5 * * *\" (digits, *, -, /, ,)")
    return cron, checked_timezone(str(schedule.get("timezone", "UTC")), where, f"{key}.schedule.timezone"), None


def _duration(text: object, where: str, key: str) -> float:
    match = _DURATION.match(str(text or ""))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"'{text}' is not a duration", where=f"{where}: {key}", fix="write e.g. `30 seconds` or `5 minutes`")
    return float(match.group(1)) * {"second": 1, "minute": 60, "hour": 3600}[match.group(2)]


def _number(options: dict, name: str, default: float, where: str, key: str, *, integer: bool = False) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or integer and value != int(value):
        raise ConfigError(f"'{key}.{name}' is {value!r}", where=f"{where}: {key}.{name}",
                          fix=f"give a {'whole ' if integer else ''}number >= 0")
    return int(value) if integer else float(value)


def _dependency_order(tasks: dict[str, Task], where: str, key: str) -> list[str]:
    """Tasks in the file's order, each moved after its upstreams; a cycle is an error naming it."""
    order: list[str] = []
    state: dict[str, str] = {}  # "visiting" while on the current path, "done" once placed

    def visit(job: str, path: list[str]) -> None:
        if state.get(job) == "done":
            return
        if state.get(job) == "visiting":
            cycle = path[path.index(job):] + [job]
            raise ConfigError(f"dependency cycle {' -> '.join(cycle)} (each job depends on the next)", where=f"{where}: {key}",
                              fix="remove one of these depends_on entries")
        state[job] = "visiting"
        for upstream in tasks[job].depends_on:
            visit(upstream, [*path, job])
        state[job] = "done"
        order.append(job)

    for job in tasks:
        visit(job, [])
    return order
