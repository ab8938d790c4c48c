"""spark-submit entry point: refine what bronze gained into the silver tables.

    deploy/spark-submit/submit.sh build_silver --env cluster    # prints the spark-submit command, then runs it
"""

import sys
from pathlib import Path

try:
    from crm_lakehouse.cli import main
except ImportError:  # a checkout without the package installed or shipped (Databricks syncs lib/)
    sys.path.append(str(Path(__file__).resolve().parents[1] / "lib"))
    from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["job", "build_silver", *sys.argv[1:]]))
