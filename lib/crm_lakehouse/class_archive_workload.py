"""The workload whose classes the JVM class archive keeps (run by ``jvm_archive.write`` in a child
process with ``-XX:ArchiveClassesAtExit``): a Delta write, MERGE, aggregate and filtered read,
then a clean exit of the JVM, which writes the archive as it exits.

    python -m crm_lakehouse.class_archive_workload [driver class path]
"""

from __future__ import annotations

import sys
import tempfile

from pyspark import SparkContext

from crm_lakehouse.config import load_settings
from crm_lakehouse.spark import build_spark_session


def load_the_classes(class_path: str) -> None:
    settings = load_settings()
    extra = {"spark.ui.enabled": "false", **({"spark.driver.extraClassPath": class_path} if class_path else {})}
    spark = build_spark_session(settings.spark, app_name="crm-lakehouse class archive", extra_conf=extra)
    with tempfile.TemporaryDirectory() as folder:
        table = f"{folder}/t"
        spark.range(100).selectExpr("id", "id % 7 AS k", "cast(id AS decimal(18, 2)) AS amount") \
            .write.format("delta").save(table)
        spark.sql(f"MERGE INTO delta.`{table}` t USING (SELECT 1L AS id, 3L AS k, 1.00 AS amount) s ON t.id = s.id "
                  "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
        spark.sql(f"SELECT k, count(*), sum(amount) FROM delta.`{table}` GROUP BY k ORDER BY k").collect()
        spark.read.format("delta").option("readChangeFeed", "false").load(table).where("k = 3").count()
    gateway = SparkContext._gateway
    spark.stop()
    # The archive is written as the JVM exits: close its gateway and wait for it.
    gateway.shutdown()
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout=600)


if __name__ == "__main__":
    load_the_classes(sys.argv[1] if len(sys.argv) > 1 else "")
