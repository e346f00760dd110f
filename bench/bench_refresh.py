"""Benchmark: cost of an exporter refresh at scale, first (full fold) and incremental.

Usage: .venv/bin/python bench/bench_refresh.py [--payments 10000 100000 1000000] [--new-rows 1000]

Starts its own PostgreSQL (as the tests do), seeds the reference data, then times the revenue
exporter's refreshes: the first one folds the whole history, the next ones only the rows made
final since. Then, from no checkpoint again, the time to a complete first snapshot the way the
exporter starts: the first folds in the background, in chunks (backfill.py), then one refresh.
Prints a Markdown table; docs/benchmarks.md and docs/performance.md keep the figures.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

# The tests' server helpers, and the stack package they import (as pytest's pythonpath does).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stack" / "src"))

from finance_demo.migrate import migrate
from finance_demo.seed import SeedPlan, seed_postgres
from finance_exporter.backfill import Backfill
from finance_exporter.checkpoint import CheckpointStore
from finance_exporter.config import DEFAULT_BACKFILL_TIMEOUT_SECONDS
from finance_exporter.domains import DOMAINS
from finance_exporter.loader import QueryLoader
from finance_exporter.snapshot import SystemClock
from finance_exporter.sources.postgres import PostgresSource
from support.servers import PostgresServer

INCREMENTAL_ROUNDS = 5


def _insert_new_rows(url: str, count: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
            "SELECT 1 + (g %% 100), 10.00, 'USD', 'pro', 'card', 'web', 'succeeded' "
            "FROM generate_series(1, %s) AS g",
            (count,),
        )


def _first_complete_snapshot(url: str) -> tuple[float, int]:
    """Seconds from start to a snapshot serving every query, folding in chunks; and the chunks."""
    source = PostgresSource(url, "bench")
    backfill = Backfill(
        PostgresSource(url, "bench-backfill"),
        CheckpointStore(None),
        SystemClock(),
        DEFAULT_BACKFILL_TIMEOUT_SECONDS,
    )
    loader = QueryLoader(
        DOMAINS["revenue"], source, None, CheckpointStore(None), SystemClock(), backfill=backfill
    )
    started = time.monotonic()
    snapshot = loader.initial()
    steps = 0
    while backfill.step() != "idle":
        steps += 1
    snapshot = loader.load(snapshot, time.monotonic() + 600)
    elapsed = time.monotonic() - started
    assert all(state.last_success for state in snapshot.queries.values())
    backfill.stop()
    source.close()
    return elapsed, steps


def _run(
    server: PostgresServer, payments: int, new_rows: int
) -> tuple[float, float, float, tuple[float, int]]:
    name = f"bench_{payments}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.url(dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        seed_postgres(conn, SeedPlan(payments=payments, seed=1, anchor=datetime.now(UTC)))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    seed_seconds = time.monotonic() - started
    source = PostgresSource(url, "bench")
    loader = QueryLoader(DOMAINS["revenue"], source, None, CheckpointStore(None), SystemClock())
    snapshot = loader.initial()
    started = time.monotonic()
    snapshot = loader.load(snapshot, time.monotonic() + 600)
    first = time.monotonic() - started
    assert all(state.last_success for state in snapshot.queries.values())
    durations = []
    for _ in range(INCREMENTAL_ROUNDS):
        _insert_new_rows(url, new_rows)
        started = time.monotonic()
        snapshot = loader.load(snapshot, time.monotonic() + 600)
        durations.append(time.monotonic() - started)
    source.close()
    return (
        seed_seconds,
        first,
        sorted(durations)[len(durations) // 2],
        _first_complete_snapshot(url),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--new-rows", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="finance-bench-"))
    root.chmod(0o755)
    server = PostgresServer(root)
    server.init()
    server.start()
    try:
        print(
            f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
            f"python {platform.python_version()}"
        )
        print()
        print(
            "| payments | seed (s) | first refresh, full fold (s) "
            f"| refresh after {args.new_rows} new payments, median of {INCREMENTAL_ROUNDS} (s) "
            "| first complete snapshot, folded in chunks (s) | steps of that fold |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for payments in args.payments:
            seed_seconds, first, incremental, (chunked, steps) = _run(
                server, payments, args.new_rows
            )
            print(
                f"| {payments:,} | {seed_seconds:.1f} | {first:.3f} | {incremental:.3f} "
                f"| {chunked:.3f} | {steps} |",
                flush=True,
            )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
