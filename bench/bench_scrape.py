"""Benchmark: the revenue exporter's CPU time per scrape of an unchanged snapshot.

Usage: .venv/bin/python bench/bench_scrape.py [--payments 100000] [--scrapes 2000]
           [--source exporters/src] [--label after]

Starts its own PostgreSQL (as the tests do), seeds the reference data, runs the revenue
exporter as a child process (`python -m finance_exporter`, imported from --source, so a
checkout of an older commit can be measured the same way) with a min_interval longer than the
run, refreshes once, then scrapes it N times per case and reads the child's CPU time from
/proc/<pid>/stat. Cases: no Accept header (text 0.0.4), what Prometheus 3 sends (OpenMetrics
1.0.0 with gzip), both from 1 and from 32 concurrent scrapers. Prints a Markdown table;
docs/performance.md keeps the figures.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

# The tests' server helpers, and the stack package they import (as pytest's pythonpath does).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack" / "src"))

from finance_demo.access import POSTGRES_EXPORTER_ROLE, set_postgres_exporter_password
from finance_demo.migrate import migrate
from finance_demo.seed import SeedPlan, seed_postgres
from support.servers import PostgresServer, free_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
CASES = {
    "text 0.0.4": {},
    "OpenMetrics + gzip (Prometheus 3)": {
        "Accept": PROMETHEUS_3_ACCEPT,
        "Accept-Encoding": "gzip",
    },
}
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    """One case: CPU per scrape in the exporter, latency seen by the scrapers, body size."""

    cpu_ms: float
    p50_ms: float
    p99_ms: float
    body_bytes: int


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND  # utime + stime


def _get(port: int, headers: dict[str, str]) -> tuple[float, int]:
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics", headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200, body[:200]
    return time.perf_counter() - started, len(body)


def _case(pid: int, port: int, headers: dict[str, str], scrapes: int, scrapers: int) -> Result:
    latencies: list[float] = []
    sizes: list[int] = []
    per_thread = scrapes // scrapers

    def scraper() -> None:
        for _ in range(per_thread):
            seconds, size = _get(port, headers)
            latencies.append(seconds)
            sizes.append(size)

    threads = [threading.Thread(target=scraper) for _ in range(scrapers)]
    cpu_before = _cpu_seconds(pid)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = _cpu_seconds(pid) - cpu_before
    latencies.sort()
    return Result(
        cpu_ms=cpu / len(latencies) * 1000,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[int(len(latencies) * 0.99) - 1] * 1000,
        body_bytes=sizes[-1],
    )


def _seed(server: PostgresServer, payments: int) -> str:
    name = f"bench_scrape_{payments}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    password = secrets.token_urlsafe(16)
    with psycopg.connect(server.url(dbname=name), autocommit=True) as conn:
        migrate(conn)
        set_postgres_exporter_password(conn, password)
    with psycopg.connect(server.url(dbname=name)) as conn:
        seed_postgres(conn, SeedPlan(payments=payments, seed=1, anchor=datetime.now(UTC)))
        conn.commit()
    with psycopg.connect(server.url(dbname=name), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return server.url(POSTGRES_EXPORTER_ROLE, password, name)


def _start_exporter(source: Path, url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = workdir / "bench.yml"
    config.write_text("min_interval_seconds: 86400\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "DATABASE_URL": url,
        "EXPORTER_LOG_LEVEL": "WARNING",
    }
    argv = [sys.executable, "-m", "finance_exporter", "revenue"]
    argv += ["--listen", f"127.0.0.1:{port}", "--config", str(config)]
    argv += ["--checkpoint-dir", str(workdir / "checkpoint")]
    child = subprocess.Popen(argv, env=env, cwd=workdir)
    deadline = time.monotonic() + 30
    while True:
        try:
            _get(port, {})  # the first scrape runs the one refresh of the whole run
            return child, port
        except OSError:
            if time.monotonic() > deadline or child.poll() is not None:
                child.kill()
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=2000, help="per case")
    parser.add_argument("--source", type=Path, default=ROOT / "exporters" / "src")
    parser.add_argument("--label", default="this checkout")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="finance-bench-"))
    root.chmod(0o755)
    server = PostgresServer(root / "pg")
    server.init()
    server.start()
    child = None
    try:
        url = _seed(server, args.payments)
        child, port = _start_exporter(args.source.resolve(), url, root)
        for _ in range(50):  # warm up: first renders, imports, allocator
            _get(port, {})
            _get(port, CASES["OpenMetrics + gzip (Prometheus 3)"])
        print(
            f"{args.label}: revenue exporter, {args.payments:,} payments, {args.scrapes} scrapes "
            f"per case; python {platform.python_version()}, {os.cpu_count()} CPUs"
        )
        print()
        print("| case | scrapers | CPU ms per scrape | p50 ms | p99 ms | body bytes |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, headers in CASES.items():
            for scrapers in (1, 32):
                r = _case(child.pid, port, headers, args.scrapes, scrapers)
                print(
                    f"| {name} | {scrapers} | {r.cpu_ms:.2f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
                    f"| {r.body_bytes:,} |",
                    flush=True,
                )
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=30)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
