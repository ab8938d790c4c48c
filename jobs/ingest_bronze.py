"""spark-submit entry point: land new files of every configured source in bronze.

    spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 jobs/ingest_bronze.py --env cluster
"""

import sys

from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["job", "ingest_bronze", *sys.argv[1:]]))
