"""SQL endpoint latency: p50 / p95 of an analyst's customer lookup and the monthly sales dashboard.

    .venv/bin/python bench/sql_latency.py --lakehouse ./lakehouse [--runs 30]

Starts `crm-lakehouse sql` (analyst role) on a free loopback port over an existing lakehouse,
times its start-up, the first lookup after it and the first dashboard after that, warms it up, times each query through PyHive (a new cursor per query, one connection, as a BI
tool does), prints one JSON object, appends it to bench/results.jsonl, and stops the server.
Timings live here, never in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pyhive import hive

REPO = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "crm-lakehouse")
LOOKUP = "SELECT * FROM analytics.customer_360 WHERE customer_id = '{customer_id}'"
DASHBOARD = ("SELECT month, region, country, channel, orders, customers, net_sales_reporting FROM analytics.sales_by_month "
             "ORDER BY month, region, country, channel")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def machine() -> dict:
    return {"cores": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version()}


def git_commit() -> str:
    """The commit measured; "-dirty" when tracked files differed from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=REPO).returncode != 0
    return head + ("-dirty" if dirty else "")


def record(result: dict) -> None:
    """Print the figures as one JSON line and append them to bench/results.jsonl."""
    print(json.dumps(result))
    with (REPO / "bench" / "results.jsonl").open("a") as out:
        out.write(json.dumps(result) + "\n")


def measure(lakehouse: str, runs: int = 30) -> dict:
    """Start the analyst endpoint over ``lakehouse``, time both queries ``runs`` times, stop it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = Path(lakehouse) / "_bench_sql.log"
    server = subprocess.Popen([CLI, "sql", "--lakehouse", lakehouse, "--port", str(port)], stdout=log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        started = time.monotonic()
        while "HiveThriftServer2 started" not in log.read_text(errors="replace"):
            if server.poll() is not None or time.monotonic() - started > 300:
                raise SystemExit(f"the endpoint did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        startup_s = time.monotonic() - started
        connection = hive.connect(host="127.0.0.1", port=port, username="bench", auth="NONE", database="analytics")

        def timed(sql: str) -> tuple[float, list]:
            cursor = connection.cursor()
            begin = time.perf_counter()
            cursor.execute(sql)
            rows = cursor.fetchall()
            return time.perf_counter() - begin, rows

        # What the first analyst waits for: one lookup right after the endpoint says it is ready.
        first_lookup_s, _ = timed(LOOKUP.format(customer_id="unknown"))
        first_dashboard_s, _ = timed(DASHBOARD)
        _, ids = timed("SELECT customer_id FROM analytics.customer_360 ORDER BY customer_id")
        ids = [row[0] for row in ids]
        for _ in range(3):  # warm-up: JIT, Delta snapshot caches
            timed(DASHBOARD)
            timed(LOOKUP.format(customer_id=ids[0]))
        lookups = [timed(LOOKUP.format(customer_id=ids[(i * 7919) % len(ids)]))[0] for i in range(runs)]
        dashboards = [timed(DASHBOARD)[0] for _ in range(runs)]
        connection.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    return {
        "customers": len(ids), "runs": runs, "endpoint_startup_s": round(startup_s, 1),
        "first_lookup_s": round(first_lookup_s, 2), "first_dashboard_s": round(first_dashboard_s, 2),
        "lookup_p50_s": round(statistics.median(lookups), 3), "lookup_p95_s": round(percentile(lookups, 0.95), 3),
        "dashboard_p50_s": round(statistics.median(dashboards), 3),
        "dashboard_p95_s": round(percentile(dashboards, 0.95), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lakehouse", default=str(REPO / "lakehouse"))
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    record({"benchmark": "sql_endpoint_latency", "lakehouse": args.lakehouse, **measure(args.lakehouse, args.runs),
            "machine": machine(), "git_commit": git_commit(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
