"""A Spark standalone cluster on loopback, from the pyspark installation: one master, one
worker, each its own process group, stopped by those ids whatever happens."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from crm_lakehouse.sql.jar import spark_home


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, then theirs), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def kill_when(process: subprocess.Popen, condition, *, timeout: float, poll: float = 0.2) -> None:
    """SIGKILL ``process`` and all its descendants as soon as ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the workflow ended (status {process.returncode}) before the moment to kill it")
        if time.monotonic() > deadline:
            raise AssertionError("the moment to kill the workflow never came")
        time.sleep(poll)
    # The runner and everything under it (spark-submit, the JVMs, Python workers), as
    # an OOM killer or a lost node would: no cleanup, no finally blocks.
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in victims) and time.monotonic() < deadline:
        time.sleep(0.2)


class StandaloneCluster:
    def __init__(self, work: Path, *, cores: int = 2, memory: str = "3g") -> None:
        self.work, self.cores, self.memory = work, cores, memory
        self.port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.pids: list[int] = []  # every JVM the cluster started, executors included, for the final check

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self._launch("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", str(self.port), "--webui-port", str(free_port())],
                     ready="I have been elected leader")
        self._launch("worker", ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                "--cores", str(self.cores), "--memory", self.memory, "--webui-port", str(free_port()),
                                "--work-dir", str(self.work / "apps"), self.url],
                     ready="Successfully registered with master")

    def _launch(self, role: str, args: list[str], *, ready: str) -> None:
        log = self.work / f"{role}.log"
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(self.work),
               # No REST submission server: it would claim the fixed port 6066.
               "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"}
        with open(log, "wb") as out:
            process = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], stdout=out,
                                       stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.processes.append(process)
        self.pids.append(process.pid)
        deadline = time.monotonic() + 90
        while ready not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the standalone {role} did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            self.pids.extend(descendants(process.pid))
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(20)
                    break
                except subprocess.TimeoutExpired:
                    continue

    def running(self) -> list[int]:
        return [pid for pid in self.pids if alive(pid)]
