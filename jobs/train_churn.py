"""spark-submit entry point: train the churn candidates, log them to MLflow, register the best and decide the champion.

    spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 jobs/train_churn.py --env cluster
"""

import sys

from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["job", "train_churn", *sys.argv[1:]]))
