"""spark-submit entry point: write synthetic CRM exports (the generator is a Spark job too).

    spark-submit --packages io.delta:delta-spark_4.2_2.13:4.4.0 jobs/generate.py --env cluster --scale 10 --days 2
"""

import sys

from crm_lakehouse.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
