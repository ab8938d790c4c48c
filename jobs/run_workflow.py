"""spark-submit entry point: a whole workflow of conf/workflows.yaml in one driver (dependency
order, retries, timeouts), for schedulers that launch one application per run, such as the
Spark Operator's ScheduledSparkApplication.

    deploy/spark-submit/submit.sh run_workflow --workflow daily --env cluster
"""

import sys
from pathlib import Path

try:
    from crm_lakehouse.cli import main
except ImportError:  # a checkout without the package installed or shipped (Databricks syncs lib/)
    sys.path.append(str(Path(__file__).resolve().parents[1] / "lib"))
    from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
