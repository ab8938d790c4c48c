"""The stack itself: Delta from Maven Central writes, MERGEs and serves its change feed."""

from __future__ import annotations

from importlib.metadata import version

import pyspark
import pytest
from chispa import assert_df_equality
from delta.tables import DeltaTable

from crm_lakehouse.spark import delta_maven_coordinates


def test_delta_coordinates_match_the_installed_pyspark_and_delta():
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    assert delta_maven_coordinates() == f"io.delta:delta-spark_{spark_minor}_2.13:{version('delta-spark')}"


def test_session_has_delta_and_the_configured_settings(spark):
    conf = spark.sparkContext.getConf()
    assert conf.get("spark.sql.extensions") == "io.delta.sql.DeltaSparkSessionExtension"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    assert conf.get("spark.ui.enabled") == "false"
    # The embedded JVM runs the parallel collector (its MXBeans are "PS ..."; G1's are "G1 ...").
    collectors = [bean.getName() for bean in
                  spark.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()]
    assert collectors and all(name.startswith("PS ") for name in collectors), collectors
    # and keeps C2 for really hot code: the running JVM's own flag value, not our option string.
    hotspot = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        spark.sparkContext._jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean"))
    assert hotspot.getVMOption("Tier4InvocationThreshold").getValue() == "50000"
    # Columns are built without recording their Python call site (a JVM round trip per call).
    from pyspark.errors.utils import is_debugging_enabled
    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    assert is_debugging_enabled() is False


def test_delta_write_merge_and_change_feed(spark, tmp_path):
    path = str(tmp_path / "people")
    spark.createDataFrame([(1, "ann"), (2, "bob")], "id long, name string").write.format("delta").save(path)
    updates = spark.createDataFrame([(2, "bobby"), (3, "cy")], "id long, name string")
    table = DeltaTable.forPath(spark, path)
    table.alias("t").merge(updates.alias("s"), "t.id = s.id").whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()

    expected = spark.createDataFrame([(1, "ann"), (2, "bobby"), (3, "cy")], "id long, name string")
    assert_df_equality(spark.read.format("delta").load(path), expected, ignore_row_order=True)
    metrics = table.history(1).select("operation", "operationMetrics").first()
    assert metrics["operation"] == "MERGE"
    assert metrics["operationMetrics"]["numTargetRowsUpdated"] == "1"
    assert metrics["operationMetrics"]["numTargetRowsInserted"] == "1"

    changes = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 1).load(path)
               .select("id", "name", "_change_type"))
    expected_changes = spark.createDataFrame(
        [(2, "bob", "update_preimage"), (2, "bobby", "update_postimage"), (3, "cy", "insert")],
        "id long, name string, _change_type string")
    assert_df_equality(changes, expected_changes, ignore_row_order=True, ignore_nullable=True)


def test_the_recorded_jars_are_deltas_and_splinks_similarity_jar_rides_beside_them(spark, base_settings):
    import os

    from crm_lakehouse.spark import _cached_delta_jars, linkage_jars

    recorded = _cached_delta_jars(base_settings.spark.ivy_cache)
    assert recorded and any(os.path.basename(jar).startswith("io.delta_delta-spark") for jar in recorded)
    assert linkage_jars() and not set(linkage_jars()) & set(recorded)
    assert set(linkage_jars()) <= set(spark.sparkContext.getConf().get("spark.jars").split(","))


@pytest.mark.e2e  # starts spark-submit: a JVM of its own
def test_under_spark_submit_the_submitted_settings_win(tmp_path, base_settings):
    """spark-submit's master, jars and --conf stay as submitted; the factory only fills gaps."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from crm_lakehouse.spark import _cached_delta_jars

    jars = _cached_delta_jars(base_settings.spark.ivy_cache)
    assert jars, "make test resolves Delta's jars before the tests run"
    script = tmp_path / "probe.py"
    script.write_text(
        "import json\n"
        "from crm_lakehouse.config import load_settings\n"
        "from crm_lakehouse.spark import build_spark_session\n"
        "spark = build_spark_session(load_settings().spark)\n"
        "conf = spark.sparkContext.getConf()\n"
        "print('RESULT ' + json.dumps({'master': spark.sparkContext.master,\n"
        "    'shuffle': spark.conf.get('spark.sql.shuffle.partitions'),\n"
        "    'packages': conf.get('spark.jars.packages', None),\n"
        "    'extensions': conf.get('spark.sql.extensions'),\n"
        "    'timezone': spark.conf.get('spark.sql.session.timeZone'),\n"
        "    'java_options': conf.get('spark.driver.extraJavaOptions', None)}))\n", encoding="utf-8")
    spark_submit = Path(sys.executable).parent / "spark-submit"
    result = subprocess.run(
        [str(spark_submit), "--master", "local[1]", "--conf", "spark.sql.shuffle.partitions=3",
         "--conf", "spark.ui.enabled=false", "--jars", ",".join(jars), str(script)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYSPARK_PYTHON": sys.executable})
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, result.stderr[-3000:]
    seen = json.loads(lines[0][len("RESULT "):])
    assert seen["master"] == "local[1]"          # not the config's local[*]
    assert seen["shuffle"] == "3"                # not the config's 4
    assert seen["packages"] is None              # no Ivy resolution added behind spark-submit's back
    assert seen["extensions"] == "io.delta.sql.DeltaSparkSessionExtension"  # a gap the factory fills
    assert seen["timezone"] == "UTC"             # config applies where spark-submit said nothing
    # spark-submit started the JVM already: the factory adds none of its JVM options (the
    # collector among them) to what Spark's launcher put there.
    assert "UseParallelGC" not in (seen["java_options"] or "") and "log4j2" not in (seen["java_options"] or "")


@pytest.mark.e2e  # a JVM of its own, to read what it prints on the console
def test_spark_ml_prints_nothing_about_a_missing_native_blas(tmp_path):
    """Without libblas (as on the test machine) Spark ML's first matrix operation made the JVM
    print "netlib-blas: JNI_OnLoad: dlopen(libblas.so.3) failed" into every churn training."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "fit.py"
    script.write_text(
        "from pyspark.ml.classification import LogisticRegression\n"
        "from pyspark.ml.linalg import Vectors\n"
        "from crm_lakehouse.config import load_settings\n"
        "from crm_lakehouse.spark import build_spark_session\n"
        "spark = build_spark_session(load_settings().spark, extra_conf={'spark.ui.enabled': 'false'})\n"
        "rows = [(float(i % 2), Vectors.dense([float(i), float(i % 3)])) for i in range(20)]\n"
        "model = LogisticRegression(maxIter=5).fit(spark.createDataFrame(rows, ['label', 'features']))\n"
        "print('FITTED', len(model.coefficients))\n", encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).resolve().parents[1])
    assert "FITTED 2" in result.stdout, result.stderr[-3000:]
    assert "netlib" not in result.stderr, result.stderr[-3000:]
