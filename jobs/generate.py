"""spark-submit entry point: write synthetic CRM exports (the generator is a Spark job too).

    deploy/spark-submit/submit.sh generate --env cluster --scale 10 --days 2
"""

import sys
from pathlib import Path

try:
    from crm_lakehouse.cli import main
except ImportError:  # a checkout without the package installed or shipped (Databricks syncs lib/)
    sys.path.append(str(Path(__file__).resolve().parents[1] / "lib"))
    from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
