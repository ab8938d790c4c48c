"""A real SQL endpoint for the tests: `crm-lakehouse sql` in its own process on a free loopback
port, over a copy of the trained and scored test lakehouse, stopped by its process id."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_lakehouse.sql.users import set_password
from tests.conftest import settings_for

CLI = str(Path(sys.executable).parent / "crm-lakehouse")
ANALYST, ANALYST_PASSWORD = "ana", "correct-horse-battery"  # bin/beeline word-splits spaces


@dataclasses.dataclass
class RunningEndpoint:
    settings: object
    host: str
    port: int
    process: subprocess.Popen
    log: Path
    env: dict


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_endpoint(root: Path, log: Path, *args: str, env: dict | None = None, timeout: float = 180) -> RunningEndpoint:
    port = free_port()
    env = {**os.environ, **(env or {})}
    handle = log.open("w")
    process = subprocess.Popen([CLI, "sql", "--lakehouse", str(root), "--port", str(port), *args], stdout=handle,
                               stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "HiveThriftServer2 started" in log.read_text(errors="replace"):
            return RunningEndpoint(None, "127.0.0.1", port, process, log, env)
        if process.poll() is not None:
            break
        time.sleep(0.5)
    stop_endpoint(process)
    raise AssertionError(f"the SQL endpoint did not start:\n{log.read_text(errors='replace')[-3000:]}")


def stop_endpoint(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group (the Python process and its JVM), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # a JVM left behind by the group
    except ProcessLookupError:
        pass


def jdbc_columns(endpoint: RunningEndpoint, user: str, password: str, schema: str, classes_dir: Path,
                 database: str = "analytics") -> dict[str, list[tuple[str, str, str]]]:
    """Browse ``schema`` with Hive's JDBC driver as BI tools do (tests/sql/JdbcCatalog.java):
    {table: [(column, type, remarks)]} from getTables, then getColumns."""
    from crm_lakehouse.sql.jar import spark_home

    javac = subprocess.run([shutil.which("javac"), "-d", str(classes_dir), str(Path(__file__).with_name("JdbcCatalog.java"))],
                           capture_output=True, text=True, timeout=120)
    assert javac.returncode == 0, javac.stderr
    url = f"jdbc:hive2://{endpoint.host}:{endpoint.port}/{database}"
    done = subprocess.run([shutil.which("java"), "-cp", f"{classes_dir}{os.pathsep}{spark_home() / 'jars' / '*'}",
                           "JdbcCatalog", url, user, password, schema], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    browsed: dict[str, list[tuple[str, str, str]]] = {}
    for line in done.stdout.splitlines():
        table, column, type_name, remarks = line.split("\t")
        browsed.setdefault(table, []).append((column, type_name.lower().replace(" ", ""), remarks))
    return browsed


@pytest.fixture(scope="session")
def sql_lakehouse(churn_runs, tmp_path_factory):
    """A private copy of the scored lakehouse: endpoint tests may write to it."""
    root = tmp_path_factory.mktemp("sql") / "lakehouse"
    shutil.copytree(churn_runs.settings.root, root)
    return settings_for(churn_runs.settings, root)


@pytest.fixture(scope="session")
def analyst_endpoint(sql_lakehouse, tmp_path_factory) -> Iterator[RunningEndpoint]:
    """The analyst endpoint with password authentication, for the whole session."""
    secrets = tmp_path_factory.mktemp("secrets")
    password_file = secrets / "sql_passwords"
    set_password(password_file, ANALYST, ANALYST_PASSWORD)
    endpoint = start_endpoint(Path(sql_lakehouse.root), secrets / "analyst.log",
                              env={"CRM_SQL_PASSWORD_FILE": str(password_file)})
    endpoint.settings = sql_lakehouse
    try:
        yield endpoint
    finally:
        stop_endpoint(endpoint.process)
