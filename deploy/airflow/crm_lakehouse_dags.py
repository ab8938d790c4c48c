"""Airflow DAGs for CRM Lakehouse, built from ``conf/workflows.yaml`` each time Airflow parses
this file: one DAG per scheduled workflow (``crm_lakehouse_daily``, ``crm_lakehouse_weekly``),
one SparkSubmitOperator task per job, dependencies, retries and timeouts as in the YAML.

Triggered workflows (``continuous``) are not DAGs: a five-minute cadence belongs to a long-running
``crm-lakehouse run --workflow continuous`` service, not to a scheduler that starts a JVM per task.

Deploy: copy (or symlink) this file into the DAGs folder of an Airflow with
``apache-airflow-providers-apache-spark``, and set
  CRM_LAKEHOUSE_HOME     a checkout of this repository on the Airflow workers (default: two
                         folders up from this file, i.e. running from the checkout itself)
  CRM_LAKEHOUSE_ENV      the config overlay the jobs use (default: cluster)
  CRM_SPARK_CONN_ID      the Airflow connection naming the Spark master (default: spark_default)
  CRM_LAKEHOUSE_ARTIFACTS  folder holding crm_lakehouse-<version>.zip from
                         `python -m crm_lakehouse.package` (default: $CRM_LAKEHOUSE_HOME/dist)
This file imports only Airflow and PyYAML, so the Airflow environment needs neither Spark nor
the lakehouse's own dependencies; the Spark connection's spark-submit does the rest.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
import yaml
from airflow import DAG
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.timetables.trigger import CronTriggerTimetable

HOME = Path(os.environ.get("CRM_LAKEHOUSE_HOME", Path(__file__).resolve().parents[2]))
ENV = os.environ.get("CRM_LAKEHOUSE_ENV", "cluster")
CONN_ID = os.environ.get("CRM_SPARK_CONN_ID", "spark_default")
ARTIFACTS = Path(os.environ.get("CRM_LAKEHOUSE_ARTIFACTS", HOME / "dist"))
# Delta's artifact for the pinned pyspark/delta-spark pair (a test keeps it equal to
# `crm_lakehouse.spark.delta_maven_coordinates()`).
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"


def _code_zip() -> str:
    zips = sorted(ARTIFACTS.glob("crm_lakehouse-*.zip"))
    return str(zips[-1]) if zips else str(ARTIFACTS / "crm_lakehouse.zip")


def _dags(spec: dict) -> dict[str, DAG]:
    defaults = spec.get("defaults") or {}
    dags = {}
    for name, workflow in spec["workflows"].items():
        schedule = workflow.get("schedule")
        if schedule is None:
            continue
        timezone = schedule.get("timezone", "UTC")
        dag = DAG(
            dag_id=f"crm_lakehouse_{name}",
            description=" ".join(str(workflow.get("description", "")).split()),
            schedule=CronTriggerTimetable(schedule["cron"], timezone=timezone),
            start_date=pendulum.datetime(2026, 1, 1, tz=timezone),
            catchup=False,     # the jobs are incremental: one run catches up everything missed
            max_active_runs=1,  # two runs of one workflow would MERGE into the same tables
            tags=["crm-lakehouse", name],
        )
        tasks = {}
        for job, options in workflow["jobs"].items():
            if not (HOME / "jobs" / f"{job}.py").is_file():
                # An import error Airflow shows in its UI, instead of a DAG failing at 3 a.m.
                raise ValueError(f"workflow '{name}' names unknown job '{job}' (no {HOME / 'jobs'}/{job}.py)")
            merged = {**defaults, **(options or {})}
            timeout = merged.get("timeout_minutes")
            tasks[job] = SparkSubmitOperator(
                task_id=job,
                dag=dag,
                conn_id=CONN_ID,
                name=f"crm-lakehouse {job}",
                application=str(HOME / "jobs" / f"{job}.py"),
                application_args=["--env", ENV],
                py_files=_code_zip(),
                packages=DELTA_PACKAGE,
                retries=int(merged.get("retries", 0)),
                retry_delay=timedelta(seconds=float(merged.get("retry_delay_seconds", 0))),
                execution_timeout=timedelta(minutes=float(timeout)) if timeout else None,
            )
        for job, options in workflow["jobs"].items():
            upstream = (options or {}).get("depends_on") or []
            for dependency in [upstream] if isinstance(upstream, str) else upstream:
                tasks[dependency] >> tasks[job]
        dags[dag.dag_id] = dag
    return dags


globals().update(_dags(yaml.safe_load((HOME / "conf" / "workflows.yaml").read_text(encoding="utf-8"))))
