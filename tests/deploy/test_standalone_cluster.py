"""The daily workflow on a real Spark standalone cluster (master + worker on loopback), each job
an application submitted by deploy/spark-submit/submit.sh with the code shipped as a zip —
killed with SIGKILL while writing bronze, then in the middle of the silver MERGEs, then in the
middle of the gold MERGEs, and rerun each time: every table equals the local run's, no row lost
or duplicated. The cluster's processes are stopped by their ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from crm_lakehouse import jvm_archive
from crm_lakehouse.churn.tracking import tracking_uri
from crm_lakehouse.gold import contracts as gold
from crm_lakehouse.silver import contracts as silver
from crm_lakehouse.spark import EMBEDDED_JVM_OPTIONS
from tests.conftest import PINNED_IDENTITY_MODEL, REPO, comparable, copy_landing
from tests.deploy.cluster import StandaloneCluster, kill_when

pytestmark = pytest.mark.cluster

CLI = str(Path(sys.executable).parent / "crm-lakehouse")
# Where and when, not what: batch ids, landing paths (and the quarantine's hash over its path), times.
RUN_COLUMNS = {"_batch_id", "_source_file", "source_file", "record_hash", "scored_at", "quarantined_at",
               "_ingested_at", "_ingest_date"}


def versions(root: Path, layer: str) -> dict[str, int]:
    """Each table's newest committed version in a layer."""
    return {log.parent.name: max(int(f.stem) for f in log.glob("*.json"))
            for log in (root / layer).glob("*/_delta_log") if any(log.glob("*.json"))}


def partly(layer: str, root: Path, tables: int, *, merged_from: int) -> bool:
    """Some of the layer's tables have a write at or past ``merged_from``, not all of them."""
    written = [v >= merged_from for v in versions(root, layer).values()]
    return sum(written) >= 1 and (len(written) < tables or not all(written))


def test_daily_workflow_on_a_standalone_cluster_killed_and_rerun_equals_the_local_run(
        spark, churn_runs, generated, tmp_path):
    lakehouse = tmp_path / "lakehouse"
    copy_landing(generated, lakehouse / "landing")
    cluster = StandaloneCluster(tmp_path / "cluster")
    # The README's command and environment, pointed at this cluster and a local folder as the
    # storage root; the local run's MLflow registry provides the champion score_churn uses.
    command = [CLI, "run", "--workflow", "daily", "--submit", "--env", "cluster"]
    # Test-sized, as in the local env; the loopback cluster's JVMs share 2 cores as the embedded
    # one does, so they run its collector and JIT thresholds (spark.EMBEDDED_JVM_OPTIONS). The
    # options hold spaces, which CRM_SUBMIT_OPTS (split on spaces) cannot carry: a properties
    # file does, and its default options come before submit.sh's --driver-java-options. The
    # worker runs on this machine, so its executors can map the class archive submit.sh gives
    # the driver, as a real cluster's nodes could not.
    archive = " ".join(jvm_archive.java_options(REPO / ".cache" / "jvm"))
    small = {"spark.sql.shuffle.partitions": 2, "spark.databricks.delta.snapshotPartitions": 2,
             "spark.sql.sources.parallelPartitionDiscovery.parallelism": 4,
             "spark.driver.defaultJavaOptions": EMBEDDED_JVM_OPTIONS,
             "spark.executor.defaultJavaOptions": f"{EMBEDDED_JVM_OPTIONS} {archive}"}
    properties = tmp_path / "spark.properties"
    properties.write_text("".join(f"{key}={value}\n" for key, value in small.items()), encoding="utf-8")
    env = {**os.environ, "CRM_SPARK_MASTER": cluster.url, "CRM_PYSPARK_PYTHON": sys.executable,
           "CRM_IDENTITY_MODEL": str(PINNED_IDENTITY_MODEL),  # the local run's model
           "CRM_LAKEHOUSE_ROOT": str(lakehouse), "SPARK_LOCAL_IP": "127.0.0.1",
           "MLFLOW_TRACKING_URI": tracking_uri(churn_runs.settings),
           "CRM_SUBMIT_OPTS": f"--driver-memory 2g --executor-memory 2g --properties-file {properties}"}
    # Silver and gold create their tables (version 0) first, then MERGE batch after batch.
    moments = [
        ("bronze", lambda: partly("bronze", lakehouse, len(churn_runs.settings.sources), merged_from=0), "[1/4]"),
        ("silver", lambda: partly("silver", lakehouse, len(silver.CONTRACTS), merged_from=1), "[2/4]"),
        ("gold", lambda: partly("gold", lakehouse, 3, merged_from=1) and (lakehouse / "gold" / "run_log").exists(),
         "[3/4]"),
    ]
    try:
        cluster.start()
        for layer, moment, its_line in moments:
            with open(tmp_path / f"killed_in_{layer}.log", "wb") as log:
                killed = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
                kill_when(killed, moment, timeout=900, poll=0.05)
            killed_log = (tmp_path / f"killed_in_{layer}.log").read_text(errors="replace")
            assert its_line not in killed_log, killed_log[-3000:]  # killed inside that job
        rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
        assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    finally:
        cluster.stop()
    assert cluster.running() == []  # master, worker and every executor they started are gone

    lines = [line for line in rerun.stdout.splitlines() if line.startswith("[")]
    assert [line.split()[1:3] for line in lines] == [
        ["ingest_bronze", "ok"], ["build_silver", "ok"], ["build_gold", "ok"], ["score_churn", "ok"]]
    assert "workflow daily: ok, 4 jobs" in rerun.stdout
    assert f"--master {cluster.url}" in rerun.stdout and "--py-files" in rerun.stdout
    # `make setup` resolved Delta and wrote the class archive: no application resolves again,
    # and each driver maps the archive.
    assert "--packages" not in rerun.stdout and rerun.stdout.count("-XX:SharedArchiveFile=") == 4
    apps = (tmp_path / "cluster" / "master.log").read_text(errors="replace").count("Registering app crm-lakehouse")
    assert apps >= 4 + 1 + 2 + 3  # the rerun's four applications and the killed runs' (at least) 1, 2 and 3
    # The executors started with the embedded JVM's options, from the properties file.
    assert "-XX:Tier4InvocationThreshold=50000" in (tmp_path / "cluster" / "worker.log").read_text(errors="replace")

    local = churn_runs.settings

    def same(actual, expected, columns: list[str], what: str) -> None:
        keep = [c for c in columns if c not in RUN_COLUMNS]
        assert actual.count() == expected.count(), what
        assert_df_equality(comparable(actual.select(*keep)), comparable(expected.select(*keep)),
                           ignore_row_order=True, ignore_nullable=True)

    for source in local.sources:
        expected = spark.read.format("delta").load(local.table_path("bronze", source.name))
        same(spark.read.format("delta").load(str(lakehouse / "bronze" / source.name)), expected, expected.columns,
             f"bronze.{source.name}")
    compared = [("silver", silver.CONTRACTS[name], silver.table_path)
                for name in ("customers", "customers_history", "customer_identity_map", "orders", "order_lines",
                             "interactions", "quarantine")]
    compared += [("gold", contract, gold.table_path) for contract in
                 (gold.CONTRACTS["customer_360"], gold.CONTRACTS["fact_sales"], gold.CONTRACTS["sales_daily"],
                  gold.CHURN_SCORES)]
    for layer, contract, table_path in compared:
        same(spark.read.format("delta").load(str(lakehouse / layer / contract.name)),
             spark.read.format("delta").load(table_path(local, contract)), contract.columns, f"{layer}.{contract.name}")
    # Every silver batch reconciles, and over all batches each source's rows came in once.
    run_log = spark.read.format("delta").load(str(lakehouse / "silver" / "run_log"))
    assert run_log.where("rows_in <> accepted + quarantined + duplicates_removed").count() == 0
    totals = lambda df: sorted(df.groupBy("source").agg(F.sum("rows_in"), F.sum("accepted"), F.sum("quarantined"))  # noqa: E731
                               .collect())
    assert totals(run_log) == totals(spark.read.format("delta").load(silver.table_path(local, silver.RUN_LOG)))
