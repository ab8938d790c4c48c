"""The analysts' sandbox schemas with a real dbt (deploy/dbt/project) against `crm-lakehouse sql`:
run, restart the endpoint, run again, test; what a sandbox may not read or hold."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pyhive import hive

from crm_lakehouse.sql import analytics
from crm_lakehouse.sql.users import set_password
from tests.conftest import settings_for
from tests.sql.fixtures import jdbc_columns, start_endpoint, stop_endpoint

REPO = Path(__file__).resolve().parents[2]
DBT = REPO / ".cache" / "dbt" / "venv" / "bin" / "dbt"
PROJECT = REPO / "deploy" / "dbt" / "project"
ANALYSTS = {"ana": "ana-sandbox-pass", "bob": "bob-sandbox-pass"}
DENIED = "access denied for the analyst role"


@pytest.fixture(scope="module")
def sandbox_lakehouse(churn_runs, tmp_path_factory):
    """A private copy of the scored lakehouse, with a sandbox view an engineer wrote over a raw table."""
    root = tmp_path_factory.mktemp("sandbox") / "lakehouse"
    shutil.copytree(churn_runs.settings.root, root)
    settings = settings_for(churn_runs.settings, root)
    engineer = start_endpoint(root, root.parent / "engineer.log", "--role", "engineer",
                              env={"CRM_SQL_PASSWORD_FILE": ""})
    try:
        with hive.connect(host=engineer.host, port=engineer.port, username="engineer", auth="NONE") as connection:
            cursor = connection.cursor()
            cursor.execute("CREATE SCHEMA sandbox_eng")
            # By path, so that the analyst endpoint (whose catalog has no silver) can restore it.
            cursor.execute("CREATE VIEW sandbox_eng.raw_emails AS SELECT customer_id, email "
                           f"FROM delta.`{settings.table_path('silver', 'customers')}`")
    finally:
        stop_endpoint(engineer.process)
    return settings


@pytest.fixture(scope="module")
def password_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sandbox_secrets") / "sql_passwords"
    for user, password in ANALYSTS.items():
        set_password(path, user, password)
    return path


def start_analyst(settings, password_file: Path, log: Path):
    endpoint = start_endpoint(Path(settings.root), log, env={"CRM_SQL_PASSWORD_FILE": str(password_file)})
    endpoint.settings = settings
    return endpoint


@pytest.fixture(scope="module")
def sandbox_endpoint(sandbox_lakehouse, password_file):
    endpoint = start_analyst(sandbox_lakehouse, password_file, Path(sandbox_lakehouse.root).parent / "analyst.log")
    try:
        yield endpoint
    finally:
        stop_endpoint(endpoint.process)


def query(endpoint, sql: str, *, user: str = "bob") -> list[tuple]:
    with hive.connect(host=endpoint.host, port=endpoint.port, username=user, password=ANALYSTS[user],
                      auth="CUSTOM", database="analytics") as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        return cursor.fetchall() if cursor.description else []


def dbt(endpoint, project: Path, *args: str) -> str:
    if not DBT.exists():
        pytest.fail(f"no dbt at {DBT} — run `make test` (or `make dbt`) to create its venv")
    env = {**os.environ, "CRM_SQL_HOST": endpoint.host, "CRM_SQL_PORT": str(endpoint.port), "CRM_SQL_USER": "ana",
           "CRM_SQL_PASSWORD": ANALYSTS["ana"], "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run([str(DBT), *args, "--project-dir", str(project), "--profiles-dir", str(project)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, f"dbt {' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    return done.stdout


def expected_segment_value(endpoint) -> list[tuple]:
    """segment_value computed from the analytics view directly, without dbt."""
    return query(endpoint, """
        SELECT c.rfm_segment, c.region, count(*), CAST(sum(c.lifetime_value_reporting) AS DECIMAL(18, 2))
        FROM analytics.customer_360 c WHERE c.customer_status = 'active'
        GROUP BY c.rfm_segment, c.region ORDER BY 1, 2""")


def built_segment_value(endpoint) -> list[tuple]:
    return query(endpoint, "SELECT rfm_segment, region, customers, lifetime_value_reporting "
                           "FROM sandbox_ana.segment_value ORDER BY 1, 2")


def test_a_view_someone_else_wrote_over_a_raw_table_is_refused_at_read(sandbox_endpoint):
    # The engineer's view is in the catalog (restored at start), but its body reads silver.
    assert ("raw_emails",) in [row[1:2] for row in query(sandbox_endpoint, "SHOW TABLES IN sandbox_eng")]
    with pytest.raises(Exception) as refused:
        query(sandbox_endpoint, "SELECT email FROM sandbox_eng.raw_emails")
    assert f"{DENIED}: reading files by path directly is not allowed" in str(refused.value)


@pytest.mark.parametrize("sql, refusal", [
    ("CREATE SCHEMA mine", "CREATE SCHEMA is allowed only in schemas whose names start with 'sandbox_' (not mine)"),
    ("CREATE SCHEMA sandbox_elsewhere LOCATION '{root}/silver'", "CREATE SCHEMA ... LOCATION is not allowed"),
    ("CREATE VIEW sandbox_bob.v AS SELECT * FROM delta.`{root}/silver/customers`",
     "reading files by path directly is not allowed"),
    ("CREATE TABLE sandbox_bob.t USING delta AS SELECT * FROM parquet.`{root}/silver/customers`",
     "reading files by path directly is not allowed"),
    ("CREATE TABLE sandbox_bob.t USING delta LOCATION '{root}/silver/customers'",
     "a sandbox table takes no LOCATION or path"),
    ("CREATE TABLE sandbox_bob.t USING delta OPTIONS (path '{root}/silver/customers') AS SELECT 1 AS x",
     "a sandbox table takes no LOCATION or path"),
    ("CREATE TABLE sandbox_bob.t USING parquet AS SELECT 1 AS x", "sandbox tables are Delta tables"),
    ("CREATE TABLE default.t USING delta AS SELECT 1 AS x", "CREATE TABLE is allowed only in schemas whose names"),
    ("CREATE VIEW analytics.customer_360_copy AS SELECT * FROM analytics.customer_360",
     "CREATE VIEW is allowed only in schemas whose names start with 'sandbox_' (not analytics)"),
    ("INSERT INTO sandbox_bob.numbers SELECT length(email) FROM delta.`{root}/silver/customers`",
     "reading files by path directly is not allowed"),
    ("CREATE GLOBAL TEMPORARY VIEW g AS SELECT 1", "CREATE GLOBAL TEMPORARY VIEW is not allowed"),
])
def test_a_sandbox_reads_only_analytics_and_holds_only_delta_in_its_warehouse(sandbox_endpoint, sql, refusal):
    root = sandbox_endpoint.settings.root
    query(sandbox_endpoint, "CREATE SCHEMA IF NOT EXISTS sandbox_bob")
    query(sandbox_endpoint, "CREATE TABLE IF NOT EXISTS sandbox_bob.numbers (n INT) USING delta")
    with pytest.raises(Exception) as refused:
        query(sandbox_endpoint, sql.format(root=root))
    assert f"{DENIED}: {refusal}" in str(refused.value)
    assert not (Path(root) / "sql_warehouse" / "sandbox_elsewhere.db").exists()


def test_dbt_runs_tests_and_runs_again_after_a_restart(sandbox_endpoint, password_file, tmp_path):
    """Last in the module: it stops the module's endpoint to restart it."""
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)
    dbt(sandbox_endpoint, project, "seed")
    dbt(sandbox_endpoint, project, "run")
    assert "PASS=4" in dbt(sandbox_endpoint, project, "test")
    # A table created by the running endpoint shows its columns to JDBC clients too.
    browsed = jdbc_columns(sandbox_endpoint, "bob", ANALYSTS["bob"], "sandbox_ana", tmp_path)
    assert [column for column, _, _ in browsed["segment_owners"]] == ["rfm_segment", "owner"]

    # Built by ana, read by bob: sandboxes are shared among analysts.
    expected = expected_segment_value(sandbox_endpoint)
    assert len(expected) > 3
    assert built_segment_value(sandbox_endpoint) == expected
    active = query(sandbox_endpoint, "SELECT count(*) FROM analytics.customer_360 WHERE customer_status = 'active'")
    assert query(sandbox_endpoint, "SELECT count(*) FROM sandbox_ana.active_customers") == active
    owners = dict(query(sandbox_endpoint, "SELECT rfm_segment, owner FROM sandbox_ana.segment_value"))
    assert owners["champions"] == "Retention team"

    stop_endpoint(sandbox_endpoint.process)
    restarted = start_analyst(sandbox_endpoint.settings, password_file, tmp_path / "restarted.log")
    try:
        # The schema, its tables, its views and their column comments outlived the process.
        assert built_segment_value(restarted) == expected
        assert query(restarted, "SELECT count(*) FROM sandbox_ana.active_customers") == active
        assert ("sandbox_ana",) in query(restarted, "SHOW SCHEMAS")
        # JDBC clients see the models' columns: the view's carry analytics' comments.
        browsed = jdbc_columns(restarted, "bob", ANALYSTS["bob"], "sandbox_ana", tmp_path)
        assert [column for column, _, _ in browsed["segment_value"]] == \
            ["rfm_segment", "region", "owner", "customers", "lifetime_value_reporting"]
        meaning = analytics.column_comments("customer_360", restarted.settings.sql.k_anonymity)["customer_id"]
        assert ("customer_id", "string", meaning) in browsed["active_customers"]
        dbt(restarted, project, "run")
        assert "PASS=4" in dbt(restarted, project, "test")
        assert built_segment_value(restarted) == expected
    finally:
        stop_endpoint(restarted.process)
