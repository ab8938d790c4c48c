"""spark-submit entry point: refine what bronze gained into the silver tables.

    spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 jobs/build_silver.py --env cluster
"""

import sys

from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["job", "build_silver", *sys.argv[1:]]))
