"""Many simultaneous scrapes share one refresh: counted on the Postgres server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import psycopg

from finance_exporter.domains import DOMAINS
from support.datastores import Database, RedisDb, StartExporter
from support.exposition import scrape

SCRAPERS = 24


def _aggregate_calls(admin_url: str) -> int:
    # Every built-in Postgres query of the revenue exporter aggregates with GROUP BY; the
    # snapshot-horizon and identity statements do not.
    with psycopg.connect(admin_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(s.calls), 0) FROM pg_stat_statements s "
            "JOIN pg_roles r ON r.oid = s.userid "
            "WHERE r.rolname = 'finance_exporter' AND s.dbid = "
            "(SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND s.query ILIKE '%GROUP BY%'"
        ).fetchone()
        assert row is not None
        return int(str(row[0]))


def test_concurrent_scrapes_share_one_refresh(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    exporter = start_exporter(
        "revenue",
        database.exporter_url,
        redis_db.exporter_url,
        config_file=write_config("min_interval_seconds: 60\n"),
    )
    barrier = threading.Barrier(SCRAPERS)
    results: list[dict[str, object]] = []
    errors: list[BaseException] = []

    def scraper() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(dict(scrape(exporter)))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=scraper) for _ in range(SCRAPERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert len(results) == SCRAPERS
    queries = [q for q in DOMAINS["revenue"] if q.source == "postgres"]
    assert _aggregate_calls(database.admin_url) == len(queries)
    runs = [r["finance_exporter_query_runs_total"] for r in results]
    assert all(run == runs[0] for run in runs)  # every scraper saw the same, single refresh
