"""The command line, end to end: the real console script, one-line errors, no tracebacks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crm_lakehouse.cli import main
from crm_lakehouse.generator import read_manifest
from tests.conftest import REPO, TEST_SCALE, copy_landing

CLI = str(Path(sys.executable).parent / "crm-lakehouse")


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("crm-lakehouse: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_unknown_job_is_one_line_and_exit_2(tmp_path):
    result = run_cli("job", "ingest_bronz", "--lakehouse", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert_one_line_error(result, "unknown job 'ingest_bronz'", "did you mean 'ingest_bronze'", "fix:")


def test_missing_config_folder_is_one_line(tmp_path):
    result = run_cli("demo", "--conf", str(tmp_path / "nope"), cwd=tmp_path)
    assert_one_line_error(result, "no base.yaml in config folder", "fix:")


def test_verbose_leaves_out_py4js_connection_chatter(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO)  # what -v's basicConfig does when pytest has not configured logging first
    assert main(["-v", "demo", "--conf", str(tmp_path / "nope")]) != 0
    # py4j logs each gateway connection and callback at INFO: dozens of lines a user cannot act on.
    assert not logging.getLogger("py4j.clientserver").isEnabledFor(logging.INFO)


def test_typo_in_a_source_yaml_is_one_line(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    text = (conf / "sources" / "us.yaml").read_text(encoding="utf-8")
    (conf / "sources" / "us.yaml").write_text(text.replace("format: parquet", "format: parquett", 1), encoding="utf-8")
    result = run_cli("job", "ingest_bronze", "--conf", str(conf), cwd=tmp_path)
    assert_one_line_error(result, "us.yaml", "unsupported format 'parquett'", "did you mean 'parquet'")


def test_negative_scale_is_refused(tmp_path):
    result = run_cli("generate", "--scale", "-1", "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert_one_line_error(result, "--scale -1.0 is out of range")


@pytest.mark.e2e  # the console script starts a JVM
def test_a_job_without_landing_data_is_one_line(tmp_path):
    """A separate process, as spark-submit or cron would start it (the standalone-cluster test
    runs every daily job this way)."""
    missing = run_cli("job", "ingest_bronze", "--lakehouse", str(tmp_path / "empty"), cwd=tmp_path)
    assert_one_line_error(missing, f"{tmp_path / 'empty' / 'landing'}: landing folder does not exist", "fix:")


def test_demo_prints_the_per_source_table_and_reruns_idempotently(spark, generated, tmp_path, capsys):
    lakehouse = tmp_path / "lakehouse"
    copy_landing(generated, lakehouse / "landing")  # same seed and scale: the demo reuses them
    assert main(["demo", "--lakehouse", str(lakehouse), "--scale", str(TEST_SCALE)]) == 0
    captured = capsys.readouterr()
    first = captured.out
    # Each line is something the user reads: not MLflow's own registry chatter.
    assert "Successfully registered model" not in captured.err and "Created version" not in captured.err
    manifests = [read_manifest(spark, str(generated), day)["sources"] for day in (0, 1)]
    total = sum(m[name]["data_lines"] for m in manifests for name in m)
    assert f"23 sources, {total} bronze rows" in first
    assert "cn_store_customers" in first and "us_partner_orders" in first
    assert "promoted: version 1 is the first champion" in first
    assert re.search(r"Scored \d+ customers as of 2026-01-0\d into gold.churn_scores", first)
    assert f"ui --backend-store-uri sqlite:///{lakehouse}/mlflow/mlflow.db" in first

    assert main(["demo", "--lakehouse", str(lakehouse), "--scale", str(TEST_SCALE)]) == 0
    second = capsys.readouterr().out
    assert f"23 sources, {total} bronze rows" in second
    assert "champion version 1 was trained on the current silver; not retrained" in second


@pytest.mark.parametrize("command", [["demo", "--help"], ["generate", "--help"], ["job", "--help"]])
def test_help_lists_the_options(command, tmp_path):
    result = run_cli(*command, cwd=tmp_path)
    assert result.returncode == 0 and "--lakehouse" in result.stdout


def test_options_before_or_after_the_command_mean_the_same(tmp_path):
    from crm_lakehouse.cli import build_parser

    parser = build_parser()
    before = parser.parse_args(["--lakehouse", "/data", "--env", "cluster", "-v", "job", "build_silver"])
    after = parser.parse_args(["job", "build_silver", "--lakehouse", "/data", "--env", "cluster", "-v"])
    assert (before.lakehouse, before.env, before.verbose) == (after.lakehouse, after.env, after.verbose) == \
        ("/data", "cluster", True)
    assert parser.parse_args(["job", "build_silver"]).env == "local"


@pytest.mark.e2e  # the console script starts a JVM
def test_source_suggest_prints_a_draft_and_an_unknown_source_to_preview_is_one_line(tmp_path):
    fixture = REPO / "tests" / "fixtures" / "exports" / "online_retail_2010-12.csv"
    result = run_cli("source", "suggest", str(fixture), "--name", "uk_invoices", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  - name: uk_invoices" in result.stdout and "InvoiceNo: order_id" in result.stdout
    assert_one_line_error(run_cli("source", "preview", "uk_invoces", "--lakehouse", str(tmp_path), cwd=tmp_path),
                          "unknown source 'uk_invoces'", "fix:")
    assert_one_line_error(run_cli("source", "suggest", str(tmp_path / "none.csv"), cwd=tmp_path), "no such file")


def test_bench_forwards_its_options_to_the_benchmark_script(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # _bench sets it for the script; restored after
    # The real script's own argument check answers first: --days below 3 is refused without
    # --fixed-cost-only, before any Spark starts.
    assert main(["bench", "--scale", "0.01", "--days", "1"]) == 2
    assert "--days must be at least 3" in capsys.readouterr().err
    forwarded: list[list[str]] = []
    monkeypatch.setattr("runpy.run_path", lambda *a, **k: forwarded.append(list(sys.argv)))
    assert main(["bench", "--scale", "3", "--days", "1", "--work", "/tmp/w", "--fixed-cost-only"]) == 0
    assert main(["bench", "--scale", "3"]) == 0
    assert [argv[1:] for argv in forwarded] == [
        ["--scale", "3.0", "--days", "1", "--work", "/tmp/w", "--fixed-cost-only"], ["--scale", "3.0", "--days", "3"]]
