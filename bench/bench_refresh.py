"""Benchmark: cost of an exporter refresh at scale, first (full fold) and incremental.

Usage: .venv/bin/python bench/bench_refresh.py [--payments 10000 100000 1000000] [--new-rows 1000]
       [--exporter revenue portfolio]

Starts its own PostgreSQL (as the tests do, with pg_stat_statements), seeds the reference data,
then times each exporter's Postgres queries: the first refresh folds the whole history, the next
ones run after a trickle of new rows and fold only those. For the incremental refreshes it also
reports the database's own side from pg_stat_statements: execution time and statements per
refresh. Then, from no checkpoint again, the time to a complete first snapshot the way the
exporter starts: the first folds in the background, in chunks (backfill.py), then one refresh.
Prints a Markdown table; docs/benchmarks.md and docs/performance.md keep the figures.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
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
from finance_exporter.spec import QuerySpec
from support.servers import PostgresServer

INCREMENTAL_ROUNDS = 5
# Utility statements (BEGIN, SET LOCAL, COMMIT) are left out of pg_stat_statements: the
# statements per refresh are the exporter's queries.
_STATEMENTS_CONF = (
    "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_utility = off\n"
)
_DB_SIDE = """
SELECT coalesce(sum(s.total_exec_time), 0), coalesce(sum(s.calls), 0)
FROM pg_stat_statements AS s JOIN pg_database AS d ON d.oid = s.dbid
WHERE d.datname = current_database() AND s.query NOT LIKE '%%pg_stat_statements%%'
"""


@dataclass(frozen=True)
class Figures:
    """One size's results: wall seconds, and the database's milliseconds and statements."""

    seed_seconds: float
    first_seconds: float
    refresh_seconds: float
    db_ms_per_refresh: float
    statements_per_refresh: float
    chunked_seconds: float
    chunk_steps: int


def _insert_new_rows(url: str, count: int) -> None:
    """The trickle: new succeeded payments, and as many logins moving last_active_at."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
            "SELECT 1 + (g %% 100), 10.00, 'USD', 'pro', 'card', 'web', 'succeeded' "
            "FROM generate_series(1, %s) AS g",
            (count,),
        )
        conn.execute(
            "UPDATE users SET last_active_at = now() WHERE id IN "
            "(SELECT 1 + floor(random() * (SELECT max(id) FROM users))::bigint "
            "FROM generate_series(1, %s))",
            (count,),
        )


def _first_complete_snapshot(url: str, queries: list[QuerySpec]) -> tuple[float, int]:
    """Seconds from start to a snapshot serving every query, folding in chunks; and the chunks."""
    source = PostgresSource(url, "bench")
    backfill = Backfill(
        PostgresSource(url, "bench-backfill"),
        CheckpointStore(None),
        SystemClock(),
        DEFAULT_BACKFILL_TIMEOUT_SECONDS,
    )
    loader = QueryLoader(
        queries, source, None, CheckpointStore(None), SystemClock(), backfill=backfill
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


def _db_side(url: str) -> tuple[float, float]:
    with psycopg.connect(url) as conn:
        row = conn.execute(_DB_SIDE).fetchone()
    assert row is not None
    return float(row[0]), float(row[1])


def _seed(server: PostgresServer, payments: int) -> tuple[str, float]:
    name = f"bench_{payments}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = server.url(dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        seed_postgres(conn, SeedPlan(payments=payments, seed=1, anchor=datetime.now(UTC)))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return url, time.monotonic() - started


def _run(url: str, exporter: str, new_rows: int, seed_seconds: float) -> Figures:
    # Only the Postgres queries: Redis reads are O(1) per key and not what this measures.
    queries = [q for q in DOMAINS[exporter] if q.source == "postgres"]
    source = PostgresSource(url, "bench")
    loader = QueryLoader(queries, source, None, CheckpointStore(None), SystemClock())
    snapshot = loader.initial()
    started = time.monotonic()
    snapshot = loader.load(snapshot, time.monotonic() + 600)
    first = time.monotonic() - started
    assert all(state.last_success for state in snapshot.queries.values())
    durations, db_ms, statements = [], [], []
    for _ in range(INCREMENTAL_ROUNDS):
        _insert_new_rows(url, new_rows)
        with psycopg.connect(url) as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        started = time.monotonic()
        snapshot = loader.load(snapshot, time.monotonic() + 600)
        durations.append(time.monotonic() - started)
        ms, calls = _db_side(url)
        db_ms.append(ms)
        statements.append(calls)
    source.close()
    chunked, steps = _first_complete_snapshot(url, queries)
    return Figures(
        seed_seconds,
        first,
        statistics.median(durations),
        statistics.median(db_ms),
        statistics.median(statements),
        chunked,
        steps,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--new-rows", type=int, default=1000)
    parser.add_argument("--exporter", nargs="+", default=["revenue"], choices=sorted(DOMAINS))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="finance-bench-"))
    root.chmod(0o755)
    server = PostgresServer(root)
    server.init()
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write(_STATEMENTS_CONF)
    server.start()
    try:
        print(
            f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
            f"python {platform.python_version()}"
        )
        print()
        print(
            "| exporter | payments | seed (s) | first refresh, full fold (s) "
            f"| refresh after {args.new_rows} new payments and logins, median of "
            f"{INCREMENTAL_ROUNDS} (s) | DB ms per refresh | statements per refresh "
            "| first complete snapshot, folded in chunks (s) | steps of that fold |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for payments in args.payments:
            url, seed_seconds = _seed(server, payments)
            for exporter in args.exporter:
                f = _run(url, exporter, args.new_rows, seed_seconds)
                print(
                    f"| {exporter} | {payments:,} | {f.seed_seconds:.1f} | {f.first_seconds:.3f} "
                    f"| {f.refresh_seconds:.3f} | {f.db_ms_per_refresh:.2f} "
                    f"| {f.statements_per_refresh:.0f} | {f.chunked_seconds:.3f} "
                    f"| {f.chunk_steps} |",
                    flush=True,
                )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
