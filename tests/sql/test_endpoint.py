"""The SQL endpoint with real clients: PyHive and beeline against `crm-lakehouse sql`."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pyhive import hive
from TCLIService.ttypes import TOperationState
from pyspark.sql import functions as F

from crm_lakehouse.gold.contracts import SALES_DAILY
from crm_lakehouse.sql import analytics
from crm_lakehouse.sql.jar import spark_home
from tests.sql.fixtures import ANALYST, ANALYST_PASSWORD, CLI, jdbc_columns, start_endpoint, stop_endpoint

DASHBOARD = "SELECT month, region, country, channel, orders, customers, units, gross_sales_reporting, returns_reporting, " \
            "net_sales_reporting FROM analytics.sales_by_month ORDER BY month, region, country, channel"
AT_RISK = "SELECT * FROM analytics.customers_at_risk ORDER BY rfm_segment, region"


def connect(endpoint, *, password: str = ANALYST_PASSWORD):
    return hive.connect(host=endpoint.host, port=endpoint.port, username=ANALYST, password=password,
                        auth="CUSTOM", database="analytics")


def query(endpoint, sql: str) -> list[tuple]:
    with connect(endpoint) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        return cursor.fetchall()


def in_spark(spark, settings, sql: str) -> list[tuple]:
    """The same analytics query run by the jobs' SparkSession, over the tables by path."""
    k = settings.sql.k_anonymity
    for name, body in analytics.view_queries(k, analytics.shared_values(spark, k, settings.table_path)).items():
        sql = sql.replace(f"analytics.{name}", f"({body}) AS {name}")
    for layer in ("gold", "silver"):
        sql = re.sub(rf"\b{layer}\.(\w+)", lambda m: f"delta.`{settings.table_path(layer, m.group(1))}`", sql)
    return [tuple(row) for row in spark.sql(sql).collect()]


def comparable(rows: list[tuple]) -> list[tuple]:
    """HiveServer2 sends timestamps and decimals as text; compare values, not wire types."""
    def value(v):
        if isinstance(v, Decimal):
            return f"{v:.2f}"
        if isinstance(v, float):
            return round(v, 6)
        return str(v) if v is not None and not isinstance(v, (int, str)) else v

    def text(v):
        if isinstance(v, str) and re.fullmatch(r"-?\d+\.\d+", v):
            return f"{Decimal(v):.2f}"
        return v.replace(" 00:00:00", "").removesuffix(".0") if isinstance(v, str) else v

    return [tuple(text(value(v)) for v in row) for row in rows]


def test_dashboard_and_risk_queries_through_pyhive_equal_the_jobs_session(spark, analyst_endpoint):
    settings = analyst_endpoint.settings
    for sql in (DASHBOARD, AT_RISK):
        through_endpoint = query(analyst_endpoint, sql)
        assert len(through_endpoint) > 5
        assert comparable(through_endpoint) == comparable(in_spark(spark, settings, sql))


def test_the_masking_policy_read_back_for_every_customer_equals_silver_masked_in_python(spark, analyst_endpoint):
    """Every customer of the view against silver.customers, masked here by the rules as documented
    (not by the SQL under test): initial, first letter and domain, last four digits, decade, and
    the city only where at least k customers live."""
    settings = analyst_endpoint.settings
    k = settings.sql.k_anonymity
    silver = {row.customer_id: row for row in
              spark.read.format("delta").load(settings.table_path("silver", "customers")).collect()}
    gold_names = {row.customer_id: row.full_name for row in
                  spark.read.format("delta").load(settings.table_path("gold", "customer_360")).collect()}
    living = Counter(row.city for row in silver.values() if row.city is not None)

    def expected(customer_id: str) -> tuple:
        name = gold_names[customer_id]
        person = silver.get(customer_id)
        if person is None:  # deleted in every source, or the 'unknown' member
            return (name[0] + "." if name else None, None, None, None, None, None)
        local, _, domain = (person.email or "").partition("@")
        return (name[0] + "." if name else None,
                f"{local[0]}***@{domain}" if person.email else None,
                person.phone[-4:] if person.phone else None,
                person.birth_date.year // 10 * 10 if person.birth_date else None,
                person.gender,
                person.city if person.city is not None and living[person.city] >= k else None)

    shown = query(analyst_endpoint, "SELECT customer_id, name_initial, email_masked, phone_last4, birth_decade, gender, "
                                    "city FROM analytics.customer_360")
    assert len(shown) == len(gold_names) > 100
    assert {row[0]: tuple(row[1:]) for row in shown} == {cid: expected(cid) for cid in gold_names}
    # The rules did something on this data: some cities are hidden, and none shown is rarer than k.
    shown_cities = Counter(row[6] for row in shown if row[6] is not None)
    assert any(count < k for count in living.values()) and min(living[city] for city in shown_cities) >= k
    columns = {c[0] for c in query(analyst_endpoint, "DESCRIBE analytics.customer_360")}
    assert not columns & {"email", "phone", "full_name", "address", "birth_date", "birth_year"}


def test_beeline_from_the_wheel_gets_the_same_answer(spark, analyst_endpoint):
    beeline = spark_home() / "bin" / "beeline"
    done = subprocess.run([str(beeline), "-u", f"jdbc:hive2://{analyst_endpoint.host}:{analyst_endpoint.port}/analytics",
                           "-n", ANALYST, "-p", ANALYST_PASSWORD, "--silent=true", "--outputformat=csv2",
                           "-e", "SELECT region, sum(net_sales_reporting) AS net_sales_reporting FROM analytics.sales_daily "
                                 "GROUP BY region ORDER BY region"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    # Beeline echoes its prompt before the first result line when stdin is not a terminal.
    lines = [re.sub(r"^\d+: jdbc:hive2://\S+> ", "", line) for line in done.stdout.splitlines()]
    lines = [line for line in lines if line and not line.startswith("SLF4J")]
    expected = in_spark(spark, analyst_endpoint.settings, "SELECT region, sum(net_sales_reporting) FROM analytics.sales_daily "
                                                          "GROUP BY region ORDER BY region")
    assert lines == ["region,net_sales_reporting", *[f"{r},{v}" for r, v in expected]]


DENIED, NOT_FOUND = "access denied for the analyst role", "TABLE_OR_VIEW_NOT_FOUND"


@pytest.mark.parametrize("sql, refusal", [
    # The analyst's catalog does not hold the raw layers: by name they do not exist.
    ("SELECT email FROM silver.customers", NOT_FOUND),
    ("SELECT * FROM gold.customer_360", NOT_FOUND),                        # names and contacts live there
    ("DESCRIBE silver.customers", NOT_FOUND),
    ("SELECT * FROM table_changes('silver.customers', 0)", NOT_FOUND),
    ("DELETE FROM gold.customer_360", NOT_FOUND),
    ("SHOW TABLES IN silver", "SCHEMA_NOT_FOUND"),
    # By path they exist, and the policy refuses them.
    ("SELECT * FROM delta.`{root}/silver/customers`", DENIED),
    ("SELECT * FROM parquet.`{root}/silver/customers`", DENIED),         # its files
    ("SELECT * FROM table_changes_by_path('{root}/silver/customers', 0)", DENIED),  # Delta's change feed
    ("SELECT email, phone FROM delta.`{root}/gold/customer_360`", DENIED),   # the profile the view masks
    ("SELECT email FROM table_changes_by_path('{root}/gold/customer_360', 0)", DENIED),
    ("CREATE TABLE mine USING delta LOCATION '{root}/silver/customers'", DENIED),
    ("CREATE TEMPORARY VIEW mine AS SELECT * FROM delta.`{root}/silver/customers`", DENIED),
    ("CREATE VIEW analytics.mine AS SELECT 1", DENIED),
    ("WITH c AS (SELECT * FROM delta.`{root}/silver/customers`) SELECT email FROM c", DENIED),
    ("SELECT * FROM analytics.sales_daily WHERE region IN (SELECT region FROM delta.`{root}/silver/customers`)", DENIED),
    ("SELECT reflect('java.lang.System', 'getenv', 'HOME')", DENIED),
    ("INSERT INTO delta.`{root}/gold/sales_daily` SELECT * FROM delta.`{root}/gold/sales_daily`", DENIED),
    ("DELETE FROM delta.`{root}/gold/customer_360`", DENIED),
    # A view's SQL names the tables' folders.
    ("DESCRIBE EXTENDED analytics.customer_360", f"{DENIED}: DESCRIBE EXTENDED and SHOW TABLE EXTENDED are not allowed"),
    ("SHOW TABLE EXTENDED IN analytics LIKE '*'", f"{DENIED}: DESCRIBE EXTENDED and SHOW TABLE EXTENDED are not allowed"),
])
def test_analyst_cannot_reach_raw_pii(analyst_endpoint, sql, refusal):
    with pytest.raises(Exception) as refused:
        query(analyst_endpoint, sql.format(root=analyst_endpoint.settings.root))
    assert refusal in str(refused.value)
    assert "Traceback" not in str(refused.value)


def test_the_analyst_sees_only_what_it_may_read(analyst_endpoint):
    assert sorted(query(analyst_endpoint, "SHOW SCHEMAS")) == [("analytics",), ("default",)]
    tables = query(analyst_endpoint, "SHOW TABLES IN analytics")
    assert sorted(name for _, name, _ in tables) == sorted(analytics.VIEW_NAMES)


def test_bad_queries_get_clear_errors_and_the_session_keeps_serving(analyst_endpoint):
    with connect(analyst_endpoint) as connection:
        cursor = connection.cursor()
        for sql, error in (("SELEC 1", "PARSE_SYNTAX_ERROR"), ("SELECT * FROM analytics.nope", "TABLE_OR_VIEW_NOT_FOUND"),
                           ("SELECT email FROM analytics.customer_360", "UNRESOLVED_COLUMN")):
            with pytest.raises(Exception, match=error):
                cursor.execute(sql)
        cursor.execute("SELECT count(*) FROM analytics.customer_360")
        assert cursor.fetchall()[0][0] > 100


def test_a_wrong_password_is_refused(analyst_endpoint):
    with pytest.raises(Exception, match="Error validating the login"):
        connect(analyst_endpoint, password="wrong password").cursor().execute("SELECT 1")


def test_concurrent_sessions_are_served_while_one_fails(analyst_endpoint):
    results, errors = {}, {}

    def session(number: int) -> None:
        try:
            sql = "SELEC broken" if number == 0 else f"SELECT count(*) + {number} FROM analytics.sales_daily"
            results[number] = query(analyst_endpoint, sql)[0][0]
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors[number] = str(error)

    threads = [threading.Thread(target=session, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert list(errors) == [0] and "PARSE_SYNTAX_ERROR" in errors[0]
    base = results[1] - 1
    assert results == {n: base + n for n in range(1, 8)}


def test_a_new_table_version_written_elsewhere_is_seen_without_restart(spark, analyst_endpoint):
    path = analyst_endpoint.settings.table_path("gold", "customer_360")
    before = query(analyst_endpoint, "SELECT count(*) FROM analytics.customer_360")[0][0]
    victim = spark.read.format("delta").load(path).orderBy("customer_id").first().customer_id
    spark.sql(f"DELETE FROM delta.`{path}` WHERE customer_id = '{victim}'")
    assert query(analyst_endpoint, "SELECT count(*) FROM analytics.customer_360")[0][0] == before - 1


def test_port_in_use_and_unauthenticated_exposure_are_refused_in_one_line(analyst_endpoint):
    root = analyst_endpoint.settings.root
    busy = subprocess.run([CLI, "sql", "--lakehouse", root, "--port", str(analyst_endpoint.port)],
                          capture_output=True, text=True, timeout=120, env={**analyst_endpoint.env})
    assert busy.returncode == 2
    assert busy.stderr.strip().splitlines() == [
        f"crm-lakehouse: error: crm-lakehouse sql --port: port {analyst_endpoint.port} on 127.0.0.1 is not available "
        "(Address already in use) — fix: choose another port with --port, or stop the process that holds it"]
    env = {k: v for k, v in analyst_endpoint.env.items() if k != "CRM_SQL_PASSWORD_FILE"}
    exposed = subprocess.run([CLI, "sql", "--lakehouse", root, "--host", "0.0.0.0"], capture_output=True, text=True,
                             timeout=120, env=env)
    assert exposed.returncode == 2
    assert len(exposed.stderr.strip().splitlines()) == 1
    assert "refusing to listen on 0.0.0.0 without authentication" in exposed.stderr


def test_engineer_role_reads_every_layer(analyst_endpoint, tmp_path):
    settings = analyst_endpoint.settings
    env = {k: v for k, v in analyst_endpoint.env.items() if k != "CRM_SQL_PASSWORD_FILE"}
    engineer = start_endpoint(Path(settings.root), tmp_path / "engineer.log", "--role", "engineer", env=env)
    try:
        with hive.connect(host=engineer.host, port=engineer.port, username="engineer", auth="NONE") as connection:
            cursor = connection.cursor()
            cursor.execute("SELECT count(*) FROM silver.customers WHERE email IS NOT NULL")
            assert cursor.fetchall()[0][0] > 100
            cursor.execute("SHOW SCHEMAS")
            assert {"bronze", "silver", "gold", "analytics"} <= {row[0] for row in cursor.fetchall()}
        # The Delta tables' columns, which live in their logs, reach JDBC clients with the contracts' comments.
        gold = jdbc_columns(engineer, "engineer", "", "gold", tmp_path, database="default")
        assert {"customer_360", "fact_sales", "sales_daily"} <= set(gold)
        assert [(column, "" if remarks == "null" else remarks) for column, _, remarks in gold["sales_daily"]] == \
            [(column, SALES_DAILY.comments.get(column, "")) for column in SALES_DAILY.schema.fieldNames()]
        silver = jdbc_columns(engineer, "engineer", "", "silver", tmp_path, database="default")
        assert ("email", "string") in [(column, type_name) for column, type_name, _ in silver["customers"]]
    finally:
        stop_endpoint(engineer.process)
    assert engineer.process.poll() is not None


SETTABLE = ("hive.server2.thrift.resultset.default.fetch.size, spark.sql.ansi.enabled, spark.sql.binaryOutputStyle, "
            "spark.sql.datetime.java8API.enabled, spark.sql.session.timeZone")
JDBC_CATALOG = "org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog"


@pytest.mark.parametrize("sql, refusal", [
    (f"SET spark.sql.catalog.x={JDBC_CATALOG}", "SET spark.sql.catalog.x is not allowed"),
    ("SET spark.sql.legacy.useCurrentConfigsForView=true", "SET spark.sql.legacy.useCurrentConfigsForView is not allowed"),
    ("SET spark.sql.variable.substitute=true", "SET spark.sql.variable.substitute is not allowed"),
    ("SET spark.sql.extensions=x.Y", "SET spark.sql.extensions is not allowed"),
    ("SET spark.sql.optimizer.excludedRules=org.apache.spark.sql.catalyst.optimizer.PushDownPredicates",
     "SET spark.sql.optimizer.excludedRules is not allowed"),
    ("SET spark.sql.files.ignoreCorruptFiles=true", "SET spark.sql.files.ignoreCorruptFiles is not allowed"),
    ("SET", "listing the server's settings is not allowed"),
    ("SET -v", "listing the server's settings is not allowed"),
    ("RESET spark.sql.shuffle.partitions", "RESET spark.sql.shuffle.partitions is not allowed"),
    ("EXPLAIN EXTENDED SELECT * FROM analytics.customer_360", "EXPLAIN is not allowed"),
])
def test_the_analyst_may_set_only_what_a_client_needs(analyst_endpoint, sql, refusal):
    with pytest.raises(Exception) as refused:
        query(analyst_endpoint, sql)
    assert f"access denied for the analyst role: {refusal}" in str(refused.value)
    if sql.startswith("SET spark"):
        assert f"the analyst role may set only {SETTABLE}." in str(refused.value)


def test_allowed_settings_variables_and_recursive_queries_work_as_a_client_expects(analyst_endpoint):
    with connect(analyst_endpoint) as connection:
        cursor = connection.cursor()
        for sql in ("SET TIME ZONE 'Asia/Shanghai'", "SET spark.sql.ansi.enabled=false", "RESET spark.sql.ansi.enabled"):
            cursor.execute(sql)
        cursor.execute("SET spark.sql.session.timeZone")
        assert cursor.fetchall() == [("spark.sql.session.timeZone", "Asia/Shanghai")]
        # No substitution: the server's environment and JVM properties stay out of results.
        cursor.execute("SELECT '${env:HOME}', '${system:java.class.path}'")
        assert cursor.fetchall() == [("${env:HOME}", "${system:java.class.path}")]
        cursor.execute("WITH RECURSIVE months(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM months WHERE n < 3) "
                       "SELECT n, (SELECT count(*) FROM analytics.sales_daily) > 0 FROM months ORDER BY n")
        assert cursor.fetchall() == [(1, True), (2, True), (3, True)]
        cursor.execute("RESET")
        cursor.execute("SELECT count(*) FROM analytics.sales_daily")
        assert cursor.fetchall()[0][0] > 0


def test_a_catalog_set_by_statement_or_by_the_connection_never_opens_a_connection(analyst_endpoint, tmp_path):
    database = tmp_path / "derby"
    url = f"jdbc:derby:{database};create=true"
    with connect(analyst_endpoint) as connection:
        cursor = connection.cursor()
        for sql in (f"SET spark.sql.catalog.x={JDBC_CATALOG}", f"SET spark.sql.catalog.x.url={url}",
                    "SELECT * FROM x.app.t"):
            with pytest.raises(Exception):
                cursor.execute(sql)
    # HiveServer2 applies a connection's "set:hiveconf:" entries before any statement is checked.
    overlay = {"set:hiveconf:spark.sql.catalog.x": JDBC_CATALOG, "set:hiveconf:spark.sql.catalog.x.url": url}
    with pytest.raises(Exception) as refused:
        hive.connect(host=analyst_endpoint.host, port=analyst_endpoint.port, username=ANALYST,
                     password=ANALYST_PASSWORD, auth="CUSTOM", configuration=overlay).cursor().execute("SELECT * FROM x.app.t")
    assert "access denied for the analyst role: this connection set spark.sql.catalog.x, which the analyst role " \
           "may not set" in str(refused.value)
    assert not database.exists()


def test_errors_name_the_problem_without_the_servers_stack(analyst_endpoint):
    for sql in ("SELECT email FROM delta.`{root}/silver/customers`", "SELEC 1"):
        with pytest.raises(Exception) as failed:
            query(analyst_endpoint, sql.format(root=analyst_endpoint.settings.root))
        text = str(failed.value)
        assert "access denied for the analyst role" in text or "PARSE_SYNTAX_ERROR" in text
        assert not re.search(r"\.(java|scala):\d+", text) and "SparkExecuteStatementOperation" not in text, text[:2000]
    # An analysis error names the problem, not the plan behind the view (its folders, its raw columns).
    with pytest.raises(Exception) as failed:
        query(analyst_endpoint, "SELECT birth_year FROM analytics.customer_360")
    text = str(failed.value)
    assert "UNRESOLVED_COLUMN" in text and "birth_decade" in text, text[:2000]
    assert analyst_endpoint.settings.root not in text and "silver" not in text and "full_name" not in text, text[:3000]
    # A client that polls the statement's status, as dbt does, reads the error there: message only too.
    with connect(analyst_endpoint) as connection:
        cursor = connection.cursor()
        cursor.execute("SELECT email FROM delta.`{root}/silver/customers`".format(root=analyst_endpoint.settings.root),
                       async_=True)
        status = cursor.poll()
        while status.operationState in (TOperationState.INITIALIZED_STATE, TOperationState.RUNNING_STATE,
                                        TOperationState.PENDING_STATE):
            time.sleep(0.1)
            status = cursor.poll()
    assert status.operationState == TOperationState.ERROR_STATE
    assert "access denied for the analyst role" in status.errorMessage
    assert not re.search(r"\.(java|scala):\d+", status.errorMessage) and "\tat " not in status.errorMessage, \
        status.errorMessage[:2000]
    # The server's log keeps the trace for whoever runs it.
    assert "at crm.sql.AnalystAccessPolicy.refuse" in analyst_endpoint.log.read_text(errors="replace")


def test_failed_logins_are_throttled_per_user_with_a_clear_message(analyst_endpoint):
    def login(user: str, password: str) -> str:
        try:
            hive.connect(host=analyst_endpoint.host, port=analyst_endpoint.port, username=user, password=password,
                         auth="CUSTOM").cursor().execute("SELECT 1")
        except Exception as error:  # noqa: BLE001 - the refusal is the result
            return str(error)
        return "logged in"

    answers = [login("intruder", f"guess {n}") for n in range(7)]
    assert all("Error validating the login: invalid user name or password" in a for a in answers[:5]), answers
    assert all("Error validating the login: too many failed logins for user 'intruder' (5 in 60 s); try again in "
               in a for a in answers[5:]), answers
    assert login(ANALYST, ANALYST_PASSWORD) == "logged in"  # another user is not locked out


def test_a_jdbc_client_browses_every_view_and_its_columns(analyst_endpoint, tmp_path):
    browsed = jdbc_columns(analyst_endpoint, ANALYST, ANALYST_PASSWORD, "analytics", tmp_path)
    assert sorted(browsed) == sorted(analytics.VIEW_NAMES)
    for view, columns in browsed.items():
        # Every column says what it means: the gold contract's comment, or the view's own for a masked one.
        for column, _, remarks in columns:
            assert remarks == analytics.column_comments(view, analyst_endpoint.settings.sql.k_anonymity)[column] != "", \
                (view, column)
        described = [(name, dtype.lower().replace(" ", ""))
                     for name, dtype, _ in query(analyst_endpoint, f"DESCRIBE analytics.{view}")]
        assert [(column, type_name) for column, type_name, _ in columns] == described, view


def test_sqlalchemy_reflection_and_pandas_read_the_views(analyst_endpoint):
    import pandas
    from sqlalchemy import create_engine, inspect

    engine = create_engine(f"crm_spark://{ANALYST}:{ANALYST_PASSWORD}@{analyst_endpoint.host}:{analyst_endpoint.port}"
                           "/analytics", connect_args={"auth": "CUSTOM"})
    try:
        assert sorted(inspect(engine).get_table_names("analytics")) == sorted(analytics.VIEW_NAMES)
        columns = [c["name"] for c in inspect(engine).get_columns("sales_by_month", schema="analytics")]
        frame = pandas.read_sql_table("sales_by_month", engine, schema="analytics")
    finally:
        engine.dispose()
    assert list(frame.columns) == columns
    assert len(frame) == query(analyst_endpoint, "SELECT count(*) FROM analytics.sales_by_month")[0][0] > 5
