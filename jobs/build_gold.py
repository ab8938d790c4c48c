"""spark-submit entry point: maintain the gold marts from what changed in silver.

    spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 jobs/build_gold.py --env cluster
"""

import sys

from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["job", "build_gold", *sys.argv[1:]]))
