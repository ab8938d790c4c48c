"""Run by Airflow's own Python (.cache/airflow/venv): load a DAG folder with DagBag and print
what the pytest side compares with conf/workflows.yaml, as JSON on the last line."""

import json
import sys

from airflow.models.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1], include_examples=False)
report = {"import_errors": {path: str(error) for path, error in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    report["dags"][dag_id] = {
        "cron": dag.timetable._expression,
        "timezone": str(dag.timetable._timezone.name),
        "max_active_runs": dag.max_active_runs,
        "tasks": {task.task_id: {
            "operator": type(task).__name__,
            "upstream": sorted(task.upstream_task_ids),
            "retries": task.retries,
            "retry_delay_seconds": task.retry_delay.total_seconds(),
            "timeout_seconds": task.execution_timeout.total_seconds() if task.execution_timeout else None,
            "application": task.application,
            "packages": task.packages,
            "py_files": task.py_files,
        } for task in dag.tasks},
    }
print(json.dumps(report))
