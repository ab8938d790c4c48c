"""deploy/: the Databricks bundle and the Kubernetes manifests stay in step with
conf/workflows.yaml, name only real jobs, and spark-submit gets the right command per master."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile

import yaml

from crm_lakehouse import jvm_archive
from crm_lakehouse.deploy_files import quartz_cron
from crm_lakehouse.jobs import JOBS
from crm_lakehouse.spark import delta_maven_coordinates
from crm_lakehouse.workflows import load_workflows
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
SUBMIT = DEPLOY / "spark-submit" / "submit.sh"
ENTRY_POINTS = {path.stem for path in (REPO / "jobs").glob("*.py")}


def test_generated_files_are_in_step_with_workflows_yaml():
    result = subprocess.run([sys.executable, "-m", "crm_lakehouse.deploy_files", "--check"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr


def test_every_job_has_an_entry_point():
    assert set(JOBS) <= ENTRY_POINTS
    assert ENTRY_POINTS - set(JOBS) == {"generate", "run_workflow"}


def test_databricks_bundle_reproduces_each_workflow():
    bundle = yaml.safe_load((DEPLOY / "databricks" / "databricks.yml").read_text(encoding="utf-8"))
    jobs = bundle["resources"]["jobs"]
    workflows = load_workflows(REPO / "conf")
    assert set(jobs) == {f"crm_lakehouse_{name}" for name in workflows}
    for name, workflow in workflows.items():
        job = jobs[f"crm_lakehouse_{name}"]
        files = {task["task_key"]: task["spark_python_task"]["python_file"] for task in job["tasks"]}
        for file in files.values():
            assert (DEPLOY / "databricks" / file).resolve().is_file(), file
        if workflow.cron is None:
            assert "continuous" in job and list(files) == ["run_workflow"]
            assert job["tasks"][0]["spark_python_task"]["parameters"][:2] == ["--workflow", name]
            continue
        assert job["schedule"]["timezone_id"] == workflow.timezone
        assert job["schedule"]["quartz_cron_expression"] == quartz_cron(workflow.cron)
        assert list(files) == workflow.order and set(files) <= set(JOBS)
        edges = {(up["task_key"], task["task_key"]) for task in job["tasks"] for up in task.get("depends_on", [])}
        assert edges == workflow.edges
        for task in job["tasks"]:
            expected = workflow.tasks[task["task_key"]]
            assert task["max_retries"] == expected.retries
            assert task["timeout_seconds"] == expected.timeout_seconds


def test_quartz_cron_conversion():
    assert quartz_cron("30 5 * * *") == "0 30 5 * * ?"
    assert quartz_cron("0 2 * * 0") == "0 0 2 ? * 1"    # Sunday: 0 in cron, 1 in Quartz
    assert quartz_cron("0 6 * * 1-5") == "0 0 6 ? * 2-6"


def test_k8s_manifests_name_real_jobs_and_workflows():
    workflows = load_workflows(REPO / "conf")
    per_job = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in (DEPLOY / "k8s" / "jobs").glob("*.yaml")}
    assert set(per_job) == set(JOBS)
    for job, app in per_job.items():
        assert app["kind"] == "SparkApplication"
        assert app["spec"]["mainApplicationFile"] == f"local:///opt/crm-lakehouse/jobs/{job}.py"
    per_workflow = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))
                    for path in (DEPLOY / "k8s" / "workflows").glob("*.yaml")}
    assert set(per_workflow) == set(workflows)
    for name, document in per_workflow.items():
        workflow = workflows[name]
        spec = document["spec"]["template"] if workflow.cron else document["spec"]
        assert document["kind"] == ("ScheduledSparkApplication" if workflow.cron else "SparkApplication")
        assert spec["mainApplicationFile"].endswith("/jobs/run_workflow.py")
        assert spec["arguments"][:2] == ["--workflow", name]
        if workflow.cron:
            assert (document["spec"]["schedule"], document["spec"]["timeZone"]) == (workflow.cron, workflow.timezone)
    dockerfile = (DEPLOY / "k8s" / "Dockerfile").read_text(encoding="utf-8")
    import pyspark

    assert f"apache/spark:{pyspark.__version__}-" in dockerfile  # the image's Spark = the pinned pyspark


def test_the_delta_artifact_is_the_pinned_one_everywhere():
    coordinates = delta_maven_coordinates()
    assert f"delta_package={coordinates}\n" in SUBMIT.read_text(encoding="utf-8")
    assert f'DELTA_PACKAGE = "{coordinates}"' in (DEPLOY / "airflow" / "crm_lakehouse_dags.py").read_text(encoding="utf-8")


def dry_run(job: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SUBMIT), job, *args], capture_output=True, text=True,
                          env={**os.environ, "CRM_SUBMIT_DRY_RUN": "1", **env})


def test_submit_prints_the_command_for_yarn_and_kubernetes(tmp_path):
    yarn = dry_run("build_gold", "--env", "cluster", CRM_SPARK_MASTER="yarn", CRM_DEPLOY_MODE="cluster",
                   CRM_CACHE_DIR=str(tmp_path))  # nothing resolved yet: Ivy resolves Delta
    assert yarn.returncode == 0, yarn.stderr
    command = yarn.stdout.strip().splitlines()[-1]
    assert "--master yarn" in command and "--deploy-mode cluster" in command
    assert f"--packages {delta_maven_coordinates()}" in command
    assert re.search(r"--py-files \S+/dist/crm_lakehouse-[\w.+]+\.zip", command)
    assert re.search(r"--archives \S+/dist/crm_conf.zip#conf \S+/jobs/build_gold.py --conf conf --env cluster$", command)

    k8s = dry_run("score_churn", "--env", "cluster", CRM_SPARK_MASTER="k8s://https://k8s.example.com:6443",
                  CRM_K8S_IMAGE="registry.example.com/crm-lakehouse:0.1.0")
    command = k8s.stdout.strip().splitlines()[-1]
    assert "--deploy-mode cluster" in command and "--packages" not in command
    assert "spark.kubernetes.container.image=registry.example.com/crm-lakehouse:0.1.0" in command
    assert command.endswith("local:///opt/crm-lakehouse/jobs/score_churn.py --conf /opt/crm-lakehouse/conf --env cluster")


def test_submit_ships_the_resolved_delta_jars_and_maps_the_class_archive_into_a_local_driver(tmp_path):
    resolved = tmp_path / "ivy" / f"resolved-{delta_maven_coordinates().replace(':', '_')}.txt"
    resolved.parent.mkdir()
    jars = [tmp_path / "ivy" / name for name in ("delta-spark.jar", "delta-storage.jar")]
    for jar in jars:
        jar.write_bytes(b"PK")
    resolved.write_text("".join(f"{jar}\n" for jar in jars), encoding="utf-8")
    archive = jvm_archive.archive_path(tmp_path / "jvm", "")
    archive.parent.mkdir()
    archive.write_bytes(b"an archive")

    client = dry_run("build_silver", CRM_SPARK_MASTER="spark://127.0.0.1:7077", CRM_CACHE_DIR=str(tmp_path))
    command = client.stdout.strip().splitlines()[-1]
    assert f"--jars {jars[0]}\\,{jars[1]}" in command and "--packages" not in command
    assert re.search(r"--driver-java-options -Dlog4j2\S+\\ -XX:SharedArchiveFile=" + re.escape(str(archive)), command)

    yarn_cluster = dry_run("build_silver", CRM_SPARK_MASTER="yarn", CRM_DEPLOY_MODE="cluster", CRM_CACHE_DIR=str(tmp_path))
    command = yarn_cluster.stdout.strip().splitlines()[-1]
    assert "--jars" in command and "SharedArchiveFile" not in command  # the driver starts on a cluster node

    jars[1].unlink()  # a jar gone from the cache: resolve again rather than ship half of Delta
    command = dry_run("build_silver", CRM_SPARK_MASTER="spark://127.0.0.1:7077",
                      CRM_CACHE_DIR=str(tmp_path)).stdout.strip().splitlines()[-1]
    assert f"--packages {delta_maven_coordinates()}" in command and "--jars" not in command


def test_submit_refuses_an_unknown_job_in_one_line():
    result = dry_run("build_gld")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "unknown job 'build_gld'" in result.stderr and "fix:" in result.stderr


def test_the_shipped_code_zip_imports_on_its_own(tmp_path):
    from crm_lakehouse.package import build_code_zip, build_conf_zip

    code, conf = build_code_zip(tmp_path), build_conf_zip(tmp_path, REPO / "conf")
    assert build_code_zip(tmp_path).read_bytes() == code.read_bytes()  # reproducible
    assert {"base.yaml", "workflows.yaml", "env/cluster.yaml"} <= set(zipfile.ZipFile(conf).namelist())
    # -S: without site-packages the editable install cannot answer; only the zip can.
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import crm_lakehouse.errors, crm_lakehouse.gold; "
             "print(crm_lakehouse.gold.__file__)")
    result = subprocess.run([sys.executable, "-S", "-c", probe, str(code)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(code))
