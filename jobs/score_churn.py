"""spark-submit entry point: score every current customer with models:/crm_churn@champion into gold.

    spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 jobs/score_churn.py --env cluster
"""

import sys

from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["job", "score_churn", *sys.argv[1:]]))
