"""The daily workflow on a real Spark standalone cluster (master + worker on loopback), each job
an application submitted by deploy/spark-submit/submit.sh with the code shipped as a zip —
killed with SIGKILL in the middle of the silver MERGEs, then rerun: the tables equal the
local run's, no row lost or duplicated. The cluster's processes are stopped by their ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from chispa import assert_df_equality

from crm_lakehouse.churn.tracking import tracking_uri
from crm_lakehouse.gold import contracts as gold
from crm_lakehouse.silver import contracts as silver
from tests.conftest import comparable, copy_landing
from tests.deploy.cluster import StandaloneCluster, kill_when

pytestmark = pytest.mark.cluster

CLI = str(Path(sys.executable).parent / "crm-lakehouse")
# Where and when, not what: batch ids, landing paths (and the quarantine's hash over its path), times.
RUN_COLUMNS = {"_batch_id", "_source_file", "source_file", "record_hash", "scored_at", "quarantined_at"}


def silver_versions(root: Path) -> dict[str, int]:
    """Each silver table's newest committed version."""
    return {log.parent.name: max(int(f.stem) for f in log.glob("*.json"))
            for log in (root / "silver").glob("*/_delta_log") if any(log.glob("*.json"))}


def test_daily_workflow_on_a_standalone_cluster_killed_and_rerun_equals_the_local_run(
        spark, churn_runs, generated, tmp_path):
    lakehouse = tmp_path / "lakehouse"
    copy_landing(generated, lakehouse / "landing")
    cluster = StandaloneCluster(tmp_path / "cluster")
    # The README's command and environment, pointed at this cluster and a local folder as the
    # storage root; the local run's MLflow registry provides the champion score_churn uses.
    command = [CLI, "run", "--workflow", "daily", "--submit", "--env", "cluster"]
    small = {"spark.sql.shuffle.partitions": 2, "spark.databricks.delta.snapshotPartitions": 2,
             "spark.sql.sources.parallelPartitionDiscovery.parallelism": 4}  # test-sized, as in the local env
    env = {**os.environ, "CRM_SPARK_MASTER": cluster.url, "CRM_PYSPARK_PYTHON": sys.executable,
           "CRM_LAKEHOUSE_ROOT": str(lakehouse), "SPARK_LOCAL_IP": "127.0.0.1",
           "MLFLOW_TRACKING_URI": tracking_uri(churn_runs.settings),
           "CRM_SUBMIT_OPTS": "--driver-memory 2g --executor-memory 2g "
                              + " ".join(f"--conf {key}={value}" for key, value in small.items())}
    try:
        cluster.start()
        with open(tmp_path / "first.log", "wb") as log:
            first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            # Mid-batch: some silver tables have their MERGE committed, the others not yet.
            def silver_half_written() -> bool:
                versions = silver_versions(lakehouse)
                return any(v >= 1 for v in versions.values()) and not all(v >= 1 for v in versions.values())

            kill_when(first, silver_half_written, timeout=900)
        first_log = (tmp_path / "first.log").read_text(errors="replace")
        assert "[1/4] ingest_bronze  ok" in first_log and "[2/4]" not in first_log  # killed inside build_silver

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
    apps = (tmp_path / "cluster" / "master.log").read_text(errors="replace").count("Registering app crm-lakehouse")
    assert apps >= 4 + 2  # the rerun's four applications and the killed run's (at least) two

    local = churn_runs.settings
    compared = [("silver", silver.CONTRACTS[name], silver.table_path)
                for name in ("customers", "customers_history", "customer_identity_map", "orders", "order_lines",
                             "interactions", "quarantine")]
    compared += [("gold", contract, gold.table_path) for contract in
                 (gold.CONTRACTS["customer_360"], gold.CONTRACTS["fact_sales"], gold.CONTRACTS["sales_daily"],
                  gold.CHURN_SCORES)]
    for layer, contract, table_path in compared:
        columns = [c for c in contract.columns if c not in RUN_COLUMNS]
        on_cluster = spark.read.format("delta").load(str(lakehouse / layer / contract.name))
        expected = spark.read.format("delta").load(table_path(local, contract))
        assert on_cluster.count() == expected.count(), f"{layer}.{contract.name}"
        assert_df_equality(comparable(on_cluster.select(*columns)), comparable(expected.select(*columns)),
                           ignore_row_order=True, ignore_nullable=True)
