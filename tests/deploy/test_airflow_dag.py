"""deploy/airflow: Airflow itself (DagBag, in its own venv) loads the DAG file without import
errors, and each DAG's tasks, dependencies, retries and timeouts are the workflow's."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from crm_lakehouse.spark import delta_maven_coordinates
from crm_lakehouse.workflows import load_workflows
from tests.conftest import REPO

AIRFLOW_PYTHON = REPO / ".cache" / "airflow" / "venv" / "bin" / "python"
# Needs the Airflow venv that `make test` builds (make test-fast does not).
pytestmark = pytest.mark.slow


def load_dagbag(dag_folder: Path, airflow_home: Path) -> dict:
    if not AIRFLOW_PYTHON.exists():
        pytest.fail(f"no Airflow venv at {AIRFLOW_PYTHON} — run `make test` (or `make airflow`) to create it")
    env = {**os.environ, "AIRFLOW_HOME": str(airflow_home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR", "CRM_LAKEHOUSE_HOME": str(REPO)}
    result = subprocess.run([str(AIRFLOW_PYTHON), str(Path(__file__).with_name("airflow_dagbag.py")), str(dag_folder)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_dagbag_loads_one_dag_per_scheduled_workflow(tmp_path):
    report = load_dagbag(REPO / "deploy" / "airflow", tmp_path)
    assert report["import_errors"] == {}
    workflows = load_workflows(REPO / "conf")
    scheduled = {name: wf for name, wf in workflows.items() if wf.cron}
    assert set(report["dags"]) == {f"crm_lakehouse_{name}" for name in scheduled}
    assert "continuous" in workflows and workflows["continuous"].cron is None  # a service, not a DAG
    for name, workflow in scheduled.items():
        dag = report["dags"][f"crm_lakehouse_{name}"]
        assert (dag["cron"], dag["timezone"], dag["max_active_runs"]) == (workflow.cron, workflow.timezone, 1)
        assert set(dag["tasks"]) == set(workflow.order)
        edges = {(up, task_id) for task_id, task in dag["tasks"].items() for up in task["upstream"]}
        assert edges == workflow.edges
        for job, task in dag["tasks"].items():
            expected = workflow.tasks[job]
            assert task["operator"] == "SparkSubmitOperator"
            assert task["application"] == str(REPO / "jobs" / f"{job}.py") and Path(task["application"]).is_file()
            assert task["packages"] == delta_maven_coordinates()
            assert (task["retries"], task["retry_delay_seconds"], task["timeout_seconds"]) == (
                expected.retries, expected.retry_delay_seconds, expected.timeout_seconds)


def test_a_broken_workflows_file_is_an_import_error_airflow_reports(tmp_path):
    home = tmp_path / "crm"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "workflows.yaml").write_text("workflows: [not, a, mapping\n", encoding="utf-8")
    dags = tmp_path / "dags"
    dags.mkdir()
    text = (REPO / "deploy" / "airflow" / "crm_lakehouse_dags.py").read_text(encoding="utf-8")
    (dags / "crm_lakehouse_dags.py").write_text(text.replace(
        'Path(os.environ.get("CRM_LAKEHOUSE_HOME", Path(__file__).resolve().parents[2]))', f'Path("{home}")'),
        encoding="utf-8")
    report = load_dagbag(dags, tmp_path / "airflow")
    assert report["dags"] == {}
    [(path, error)] = report["import_errors"].items()
    assert path.endswith("crm_lakehouse_dags.py") and "yaml" in error.lower()
