"""``crm-lakehouse sql``: Spark's Thrift JDBC/ODBC server (HiveServer2 protocol) over the lakehouse.

Catalog: Spark's in-memory catalog of this server process. At start the engineer endpoint
registers every Delta directory under the lakehouse root by location as ``<layer>.<table>`` and
creates the ``analytics`` views over them; the analyst endpoint creates only the views, which
read the tables by path. Nothing is shared with other processes, so there is no metastore to lock
(an embedded Derby metastore admits one JVM at a time) and nothing to keep in step: the Delta
log is the truth, and each query reads the newest version other jobs committed. Tables created
after the start are registered by a background refresh (engineer role). Clients' own schemas
(the ``sandbox_`` ones, dbt's target) are kept in ``<root>/sql_warehouse`` and registered again at
every start (sql/sandbox.py). A cluster that wants one catalog for many engines uses a Hive
metastore instead (docs/analysts.md, "The SQL endpoint").

Roles: ``analyst`` (the default) installs AnalystAccessPolicy, which lets statements read data
only through ``analytics.*``; ``engineer`` serves every layer. Authentication: HiveServer2
CUSTOM mode against a file of salted password hashes when one is configured; without one the
server only binds to a loopback address.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crm_lakehouse.catalog import register_all
from crm_lakehouse.config import Settings, join_path
from crm_lakehouse.delta_writes import table_version
from crm_lakehouse.errors import ConfigError, LakehouseError
from crm_lakehouse.sql import analytics, sandbox
from crm_lakehouse.sql.jar import AUTHENTICATOR_CLASS, POLICY_CLASS, default_cache_dir, endpoint_class_path, endpoint_jar

ROLES = ("analyst", "engineer")
PASSWORD_FILE_VARIABLE = "CRM_SQL_PASSWORD_FILE"
NO_PASSWORD_CHECK = ("NONE", "NOSASL")

log = logging.getLogger(__name__)


class EndpointError(LakehouseError):
    """The SQL endpoint cannot start as asked."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    role: str
    authentication: str

    @property
    def jdbc_url(self) -> str:
        database = analytics.SCHEMA if self.role == "analyst" else "default"
        return f"jdbc:hive2://{self.host}:{self.port}/{database}"


def plan_endpoint(settings: Settings, *, host: str | None, port: int | None, role: str | None) -> Endpoint:
    """Validate what was asked before Spark starts: role, address, authentication, free port."""
    cfg = settings.sql
    host = host or cfg.host
    port = port if port is not None else cfg.port
    role = role or cfg.role
    if role not in ROLES:
        raise ConfigError(f"unknown role '{role}'", where="crm-lakehouse sql --role", fix=f"use one of: {', '.join(ROLES)}")
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is out of range", where="crm-lakehouse sql --port", fix="use 1024-65535")
    authentication = authentication_mode(settings)
    if authentication in NO_PASSWORD_CHECK and not is_loopback(host):
        raise EndpointError(
            f"refusing to listen on {host} without authentication", where="crm-lakehouse sql --host",
            fix=f"set {PASSWORD_FILE_VARIABLE} (crm-lakehouse sql-user add NAME) or sql.hive_conf LDAP/KERBEROS "
                "settings, or keep the default host 127.0.0.1")
    if settings.sql.password_file and not Path(settings.sql.password_file).is_file():
        raise EndpointError(f"password file {settings.sql.password_file} does not exist", where=PASSWORD_FILE_VARIABLE,
                            fix="create it with: crm-lakehouse sql-user add NAME")
    _require_free_port(host, port)
    return Endpoint(host=host, port=port, role=role, authentication=authentication)


def authentication_mode(settings: Settings) -> str:
    if settings.sql.password_file:
        return "CUSTOM"
    return str(settings.sql.hive_conf.get("hive.server2.authentication", "NONE")).upper()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _require_free_port(host: str, port: int) -> None:
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((host, port))
    except OSError as error:
        raise EndpointError(f"port {port} on {host} is not available ({error.strerror})",
                            where="crm-lakehouse sql --port",
                            fix="choose another port with --port, or stop the process that holds it") from None
    finally:
        probe.close()


def _require_gold(settings: Settings) -> None:
    """The views need the gold tables; say so before starting Spark (local lakehouses only)."""
    if "://" in settings.root:
        return
    missing = [name for name in analytics.REQUIRES
               if not os.path.isdir(join_path(settings.root, *name.split("."), "_delta_log"))]
    if missing:
        raise EndpointError(f"the lakehouse at {settings.root} has no {', '.join(missing)} yet",
                            where=settings.root, fix="build it first: make demo (or the daily jobs)")


def serve(settings: Settings, endpoint: Endpoint, *, on_ready: Callable[[str], None] = print) -> int:
    """Start the server and block until SIGTERM or SIGINT; returns the exit status."""
    from crm_lakehouse.spark import build_spark_session

    _require_gold(settings)
    jar = endpoint_jar(default_cache_dir(settings))
    if settings.sql.password_file:
        # The authenticator runs in the JVM this process is about to start, which inherits it.
        os.environ[PASSWORD_FILE_VARIABLE] = str(Path(settings.sql.password_file).resolve())
    extensions = ["io.delta.sql.DeltaSparkSessionExtension"] + ([POLICY_CLASS] if endpoint.role == "analyst" else [])
    role_conf = {
        # ${env:...} and ${system:...} in a statement would show the server's environment and JVM
        # properties; the access policy keeps analysts from setting it back.
        "spark.sql.variable.substitute": "false",
    } if endpoint.role == "analyst" else {}
    spark = build_spark_session(settings.spark, app_name=f"crm-lakehouse sql ({endpoint.role})", extra_conf={
        "spark.driver.extraClassPath": endpoint_class_path(settings, jar),
        "spark.sql.extensions": ",".join(extensions),
        "spark.ui.enabled": "false",
        # Schemas and tables clients create land under the lakehouse root, not in the working
        # folder; the listener keeps the sandbox views there too.
        "spark.sql.warehouse.dir": sandbox.warehouse(settings),
        "spark.sql.queryExecutionListeners": sandbox.LISTENER_CLASS,
        sandbox.PREFIX_CONF: settings.sql.sandbox_prefix,
        **role_conf,
    })
    spark.sparkContext.setLogLevel("WARN")
    hive_conf = {
        "hive.server2.thrift.bind.host": endpoint.host,
        "hive.server2.thrift.port": str(endpoint.port),
        "hive.server2.transport.mode": "binary",
        "hive.server2.enable.doAs": "false",
        **{str(k): str(v) for k, v in settings.sql.hive_conf.items()},
    }
    if endpoint.authentication == "CUSTOM":
        hive_conf["hive.server2.authentication"] = "CUSTOM"
        hive_conf["hive.server2.custom.authentication.class"] = AUTHENTICATOR_CLASS
    jvm = spark.sparkContext._jvm
    for key, value in hive_conf.items():
        spark.conf.set(key, value)
        # Hive's password providers read their settings from a fresh HiveConf, which sees JVM
        # system properties but not the server's conf.
        jvm.java.lang.System.setProperty(key, value)
    k = settings.sql.k_anonymity
    if endpoint.role == "engineer":
        tables = register_all(spark, settings)
        locate = None
    else:
        # The analyst's catalog holds only what an analyst may read: SHOW SCHEMAS, SHOW TABLES and
        # DESCRIBE do not even name the raw layers, and the views read them by path.
        tables = []
        locate = settings.table_path
    counted = customer_version(spark, settings.table_path)  # before counting: a commit during it is seen next time
    shared = analytics.shared_values(spark, k, locate)
    views = analytics.create_views(spark, k, shared, locate)
    sandboxed = sandbox.restore(spark, settings)
    publish_schemas(spark, tables + [name for name in sandboxed if name.count(".") == 1])
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(
        spark._jsparkSession, False)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    served = f"{len(tables)} tables, {len(views)} analytics views" if tables else f"{len(views)} analytics views"
    served += f", {len(sandboxed)} sandbox objects" if sandboxed else ""
    on_ready(f"HiveThriftServer2 started: {endpoint.jdbc_url} (role {endpoint.role}, authentication "
             f"{endpoint.authentication}, {served}); Ctrl-C stops it")
    try:
        while not stop.wait(settings.sql.refresh_seconds):
            if endpoint.role == "engineer":
                _register_new_tables(spark, settings)
            now = customer_version(spark, settings.table_path)
            if now != counted:
                recounted = _recount_shared_values(spark, k, shared, locate)
                # The same object back means the count failed: try again next time.
                counted, shared = (now if recounted is not shared else counted), recounted
    finally:
        _stop_quietly(server, spark)
    return 0


def _register_new_tables(spark, settings: Settings) -> None:
    """Tables that jobs created since the start; one being created right now (its folder without
    a first commit yet) fails this pass and is registered by the next, and the server keeps serving."""
    from pyspark.errors import PySparkException

    try:
        publish_schemas(spark, register_all(spark, settings))
    except PySparkException as error:
        log.warning("registering new tables failed this time: %s", str(error).splitlines()[0])


def customer_version(spark, table_path: Callable[[str, str], str]) -> int:
    """The Delta version of the table the city count reads, from its log's file names (no Spark
    job). The endpoint counts again only when it moved: at scale 1 the count takes about 2 s of
    a 2-core machine, which every refresh_seconds would cost for nothing."""
    return table_version(spark, table_path("gold", "customer_360"))


def _recount_shared_values(spark, k: int, shared: dict[str, list[str]], locate) -> dict[str, list[str]]:
    """The cities the customer view may show, counted again: a city that reached k customers
    appears, one that fell below disappears, by replacing the view."""
    from pyspark.errors import PySparkException

    try:
        now = analytics.shared_values(spark, k, locate)
        if now != shared:
            analytics.create_views(spark, k, now, locate, only=("customer_360",))
        return now
    except PySparkException as error:
        log.warning("recounting the cities the analytics views may show failed this time: %s",
                    str(error).splitlines()[0])
        return shared


def publish_schemas(spark, names: list[str]) -> None:
    """Copy each Delta table's columns from its log into its catalog entry (TableSchemas.java):
    JDBC getColumns reads the catalog. Views are skipped; a table whose schema cannot be copied
    (a column dropped from it) keeps its entry and is logged."""
    from py4j.protocol import Py4JJavaError

    publish = spark.sparkContext._jvm.crm.sql.TableSchemas.publish
    for name in names:
        schema, table = name.split(".")
        try:
            publish(spark._jsparkSession, schema, table)
        except Py4JJavaError as error:
            log.warning("the columns of %s were not copied to the catalog: %s", name,
                        str(error.java_exception.getMessage()).splitlines()[0])


def _stop_quietly(server, spark) -> None:
    """Stop the server and Spark; a JVM that was killed first (kill of the process group) is fine."""
    from py4j.protocol import Py4JError

    for stop in (server.stop, spark.stop):
        try:
            stop()
        except (Py4JError, ConnectionError):
            return
