"""Generate the scheduler deployments in ``deploy/`` from ``conf/workflows.yaml``, so the
Databricks bundle and the Kubernetes manifests never drift from the job graph.

    python -m crm_lakehouse.deploy_files           # rewrite deploy/databricks and deploy/k8s
    python -m crm_lakehouse.deploy_files --check   # exit 1 naming the stale files (the tests do this)

(``make deploy`` runs the first.) The Airflow DAG needs no generation: it reads the YAML itself.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from crm_lakehouse.package import package_version
from crm_lakehouse.workflows import Workflow, load_workflows

REPO = Path(__file__).resolve().parents[2]
HEADER = "# Generated from conf/workflows.yaml by `make deploy` (python -m crm_lakehouse.deploy_files).\n" \
         "# Edit the workflows file and regenerate; a test fails while this file is stale.\n"
IMAGE = f"crm-lakehouse:{package_version()}"
K8S_HOME = "/opt/crm-lakehouse"
SPARK_VERSION = "4.2.0"
# Databricks installs these next to its own Spark, Delta and MLflow (pins as in pyproject.toml).
DATABRICKS_PYPI = ["phonenumbers==9.0.43", "pyyaml==6.0.3"]


def quartz_cron(cron: str) -> str:
    """A five-field cron as Quartz (Databricks): seconds first, '?' for the unused day field,
    days of the week counted 1 = Sunday instead of 0 = Sunday."""
    minute, hour, day, month, weekday = cron.split()
    if weekday == "*":
        return f"0 {minute} {hour} {day} {month} ?"

    def shift(token: str) -> str:
        return token if not token.isdigit() else str(int(token) % 7 + 1)

    quartz_weekday = re.sub(r"\d+", lambda m: shift(m.group(0)), weekday)
    return f"0 {minute} {hour} {'?' if day == '*' else day} {month} {quartz_weekday}"


def databricks_bundle(workflows: dict[str, Workflow]) -> str:
    jobs = {}
    for name, workflow in workflows.items():
        job: dict = {
            "name": f"crm-lakehouse {name}",
            "description": workflow.description,
            "max_concurrent_runs": 1,
            "job_clusters": [{"job_cluster_key": "crm", "new_cluster": {
                "spark_version": "${var.spark_version}", "node_type_id": "${var.node_type_id}",
                "num_workers": "${var.num_workers}",
                "spark_env_vars": {"CRM_LAKEHOUSE_ROOT": "${var.lakehouse_root}",
                                   "MLFLOW_TRACKING_URI": "databricks"}}}],
        }
        if workflow.cron:
            job["schedule"] = {"quartz_cron_expression": quartz_cron(workflow.cron),
                               "timezone_id": workflow.timezone, "pause_status": "UNPAUSED"}
            job["tasks"] = [_databricks_task(task.job, f"../../jobs/{task.job}.py", [], task) for task in workflow.tasks.values()]
        else:
            # Near-real-time: one long-running task whose runner keeps the processing-time
            # trigger; Databricks restarts it if it ever stops.
            job["continuous"] = {"pause_status": "UNPAUSED"}
            job["tasks"] = [_databricks_task("run_workflow", "../../jobs/run_workflow.py", ["--workflow", name], None)]
        jobs[f"crm_lakehouse_{name}"] = job
    bundle = {
        "bundle": {"name": "crm-lakehouse"},
        # The jobs import crm_lakehouse from the synced lib/ (jobs/*.py fall back to it) and read conf/.
        "sync": {"paths": ["../../lib", "../../jobs", "../../conf"]},
        "variables": {
            "lakehouse_root": {"description": "the lakehouse root, e.g. abfss://crm@account.dfs.core.windows.net/lakehouse"},
            "spark_version": {"description": "a Databricks runtime with Spark 4 and Delta", "default": "17.3.x-scala2.13"},
            "node_type_id": {"description": "worker instance type", "default": "Standard_D4ds_v5"},
            "num_workers": {"description": "workers per job cluster", "default": 2},
        },
        "targets": {"dev": {"mode": "development", "default": True}, "prod": {"mode": "production"}},
        "resources": {"jobs": jobs},
    }
    return HEADER + yaml.safe_dump(bundle, sort_keys=False, width=120, allow_unicode=True)


def _databricks_task(key: str, python_file: str, extra_args: list[str], task) -> dict:
    entry: dict = {
        "task_key": key,
        "job_cluster_key": "crm",
        "spark_python_task": {"python_file": python_file,
                              "parameters": [*extra_args, "--env", "cluster", "--conf", "${workspace.file_path}/conf"]},
        "libraries": [{"pypi": {"package": package}} for package in DATABRICKS_PYPI],
    }
    if task is not None:
        if task.depends_on:
            entry["depends_on"] = [{"task_key": upstream} for upstream in task.depends_on]
        entry["max_retries"] = task.retries
        entry["min_retry_interval_millis"] = int(task.retry_delay_seconds * 1000)
        if task.timeout_seconds != float("inf"):
            entry["timeout_seconds"] = int(task.timeout_seconds)
    return entry


def spark_application_spec(job_file: str, arguments: list[str], *, restart: dict) -> dict:
    return {
        "type": "Python",
        "pythonVersion": "3",
        "mode": "cluster",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "mainApplicationFile": f"local://{K8S_HOME}/jobs/{job_file}",
        "arguments": [*arguments, "--env", "cluster", "--conf", f"{K8S_HOME}/conf"],
        "sparkVersion": SPARK_VERSION,
        "restartPolicy": restart,
        "driver": {"cores": 1, "memory": "4g", "serviceAccount": "spark",
                   "envFrom": [{"configMapRef": {"name": "crm-lakehouse"}}, {"secretRef": {"name": "crm-lakehouse"}}]},
        "executor": {"instances": 2, "cores": 2, "memory": "8g",
                     "envFrom": [{"configMapRef": {"name": "crm-lakehouse"}}, {"secretRef": {"name": "crm-lakehouse"}}]},
    }


def k8s_manifests(workflows: dict[str, Workflow], jobs: list[str]) -> dict[str, str]:
    """File name -> YAML: a SparkApplication per job (on-demand runs), a ScheduledSparkApplication
    per scheduled workflow and a long-running SparkApplication per triggered workflow."""
    files = {}
    meta = {"namespace": "crm-lakehouse", "labels": {"app.kubernetes.io/part-of": "crm-lakehouse"}}
    for job in jobs:
        files[f"jobs/{job}.yaml"] = HEADER + yaml.safe_dump({
            "apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
            "metadata": {"name": f"crm-{job.replace('_', '-')}", **meta},
            "spec": spark_application_spec(f"{job}.py", [], restart={"type": "Never"}),
        }, sort_keys=False)
    for name, workflow in workflows.items():
        retries = max(task.retries for task in workflow.tasks.values())
        if workflow.cron:
            # The whole graph runs in one driver (jobs/run_workflow.py): the operator schedules
            # applications, not dependencies, and our runner keeps the order, retries and timeouts.
            spec = spark_application_spec("run_workflow.py", ["--workflow", name], restart={"type": "Never"})
            document = {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "ScheduledSparkApplication",
                        "metadata": {"name": f"crm-workflow-{name}", **meta},
                        "spec": {"schedule": workflow.cron, "timeZone": workflow.timezone,
                                 "concurrencyPolicy": "Forbid", "template": spec}}
        else:
            spec = spark_application_spec("run_workflow.py", ["--workflow", name],
                                          restart={"type": "Always", "onFailureRetryInterval": 60,
                                                   "onSubmissionFailureRetryInterval": 60})
            document = {"apiVersion": "sparkoperator.k8s.io/v1beta2", "kind": "SparkApplication",
                        "metadata": {"name": f"crm-workflow-{name}", **meta}, "spec": spec}
        files[f"workflows/{name}.yaml"] = HEADER + f"# Jobs in order: {' -> '.join(workflow.order)}; " \
            f"up to {retries} retries per job inside the runner.\n" + yaml.safe_dump(document, sort_keys=False)
    return files


def expected_files(conf_dir: str | Path | None = None) -> dict[Path, str]:
    from crm_lakehouse.jobs import JOBS

    workflows = load_workflows(conf_dir or REPO / "conf")
    files = {REPO / "deploy" / "databricks" / "databricks.yml": databricks_bundle(workflows)}
    for name, text in k8s_manifests(workflows, list(JOBS)).items():
        files[REPO / "deploy" / "k8s" / name] = text
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_lakehouse.deploy_files", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files (exit 1)")
    args = parser.parse_args(argv)
    expected = expected_files()
    leftovers = [path for folder in ("jobs", "workflows") for path in (REPO / "deploy" / "k8s" / folder).glob("*.yaml")
                 if path not in expected]
    stale = [path for path, text in expected.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text] + leftovers
    if args.check:
        for path in stale:
            print(f"crm-lakehouse: error: deploy file {path.relative_to(REPO)} is out of step with conf/workflows.yaml "
                  f"— fix: make deploy", file=sys.stderr)
        return 1 if stale else 0
    for path, text in expected.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for path in leftovers:  # a job or workflow that no longer exists
        path.unlink()
    print(f"wrote {len(stale)} changed file(s) under deploy/databricks and deploy/k8s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
