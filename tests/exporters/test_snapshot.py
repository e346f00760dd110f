"""Snapshot, QueryState and the single-flight Refresher: freshness, deadlines, shared refreshes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import psycopg

from finance_exporter.domains import DOMAINS
from finance_exporter.domains.revenue import MRR
from finance_exporter.snapshot import QueryState, Refresher, Snapshot
from support.clock import FakeClock
from support.datastores import Database, RedisDb, StartExporter
from support.exposition import scrape

SCRAPERS = 24


class CountingLoader:
    """A loader that stamps each snapshot with the clock, counts its loads, and may block."""

    def __init__(self, clock: FakeClock, gate: threading.Event | None = None) -> None:
        self.clock = clock
        self.loads = 0
        self.started = threading.Event()
        self._gate = gate

    def load(self, previous: Snapshot, deadline: float) -> Snapshot:
        self.loads += 1
        self.started.set()
        if self._gate is not None:
            assert self._gate.wait(timeout=10)
        return replace(previous, taken_at=self.clock.monotonic())


def _empty() -> Snapshot:
    return Snapshot.empty({MRR.name: QueryState(spec=MRR)})


def test_empty_snapshot_is_never_fresh_and_its_sources_are_down() -> None:
    empty = _empty()
    assert empty.taken_at == float("-inf")
    assert empty.source_up == {"postgres": False}
    clock = FakeClock()
    loader = CountingLoader(clock)
    refresher = Refresher(loader, empty, min_interval_seconds=3600.0, clock=clock)
    assert refresher.get(clock.monotonic() + 1.0).taken_at == clock.monotonic()
    assert loader.loads == 1


def test_snapshot_younger_than_min_interval_is_served_without_a_refresh() -> None:
    clock = FakeClock()
    loader = CountingLoader(clock)
    refresher = Refresher(loader, _empty(), min_interval_seconds=30.0, clock=clock)
    first = refresher.get(clock.monotonic() + 1.0)
    clock.advance(29.9)
    assert refresher.get(clock.monotonic() + 1.0) is first
    assert loader.loads == 1
    clock.advance(0.1)
    second = refresher.get(clock.monotonic() + 1.0)
    assert loader.loads == 2
    assert second.taken_at == first.taken_at + 30.0


def test_a_follower_past_its_deadline_gets_the_previous_snapshot() -> None:
    clock = FakeClock()
    gate = threading.Event()
    loader = CountingLoader(clock, gate)
    initial = _empty()
    refresher = Refresher(loader, initial, min_interval_seconds=30.0, clock=clock)
    results: list[Snapshot] = []
    leader = threading.Thread(target=lambda: results.append(refresher.get(clock.monotonic() + 5)))
    leader.start()
    assert loader.started.wait(timeout=10)
    # The leader holds the refresh; a follower with no time left does not wait for it.
    assert refresher.get(clock.monotonic()) is initial
    gate.set()
    leader.join(timeout=10)
    assert loader.loads == 1
    assert results[0].taken_at == clock.monotonic()


def test_a_follower_within_its_deadline_serves_the_leaders_refresh() -> None:
    clock = FakeClock()
    gate = threading.Event()
    loader = CountingLoader(clock, gate)
    refresher = Refresher(loader, _empty(), min_interval_seconds=30.0, clock=clock)
    results: list[Snapshot] = []

    def scrape_once() -> None:
        results.append(refresher.get(clock.monotonic() + 10))

    leader = threading.Thread(target=scrape_once)
    leader.start()
    assert loader.started.wait(timeout=10)
    follower = threading.Thread(target=scrape_once)
    follower.start()
    gate.set()
    leader.join(timeout=10)
    follower.join(timeout=10)
    assert loader.loads == 1
    assert len(results) == 2 and results[0] is results[1]


def test_a_scrape_during_a_refresh_is_served_the_previous_snapshot_at_once() -> None:
    clock = FakeClock()
    gate = threading.Event()
    gate.set()
    loader = CountingLoader(clock, gate)
    refresher = Refresher(loader, _empty(), min_interval_seconds=30.0, clock=clock)
    first = refresher.get(clock.monotonic() + 10)
    gate.clear()
    loader.started.clear()
    clock.advance(30.0)
    results: list[Snapshot] = []
    leader = threading.Thread(target=lambda: results.append(refresher.get(clock.monotonic() + 10)))
    leader.start()
    assert loader.started.wait(timeout=10)
    # The leader's refresh is blocked; a scrape with all the time in the world does not wait.
    assert refresher.get(clock.monotonic() + 3600) is first
    assert leader.is_alive() and results == []
    gate.set()
    leader.join(timeout=10)
    assert loader.loads == 2
    assert results[0] is refresher.current and results[0].taken_at == clock.monotonic()


def test_the_checkpoint_is_written_once_the_new_snapshot_is_served() -> None:
    clock = FakeClock()
    seen: list[tuple[bool, bool]] = []

    def on_published(previous: Snapshot, snapshot: Snapshot) -> None:
        # A scrape arriving during the write is served the new snapshot, without waiting.
        served = refresher.get(clock.monotonic())
        seen.append((previous is initial, served is snapshot))

    initial = _empty()
    refresher = Refresher(CountingLoader(clock), initial, 30.0, clock, on_published=on_published)
    refresher.get(clock.monotonic() + 1)
    assert seen == [(True, True)]


def test_failed_run_keeps_values_and_counts_the_reason() -> None:
    state = QueryState(
        spec=MRR,
        values={("USD", "pro"): (Decimal("10"),)},
        loaded_at=100.0,
        last_success=True,
        runs_total=3,
        errors_total={"timeout": 1},
    )
    failed = state.failed("timeout", duration_seconds=0.5).failed("query")
    assert failed.values == {("USD", "pro"): (Decimal("10"),)}
    assert failed.loaded_at == 100.0
    assert failed.last_success is False
    assert failed.runs_total == 5
    assert failed.errors_total == {"timeout": 2, "query": 1}
    assert failed.duration_seconds == 0.0


def test_values_are_stale_only_after_max_age_and_before_any_load() -> None:
    assert QueryState(spec=MRR).is_stale(now=0.0)
    loaded = QueryState(spec=MRR, loaded_at=1000.0)
    assert not loaded.is_stale(now=1000.0 + MRR.max_age_seconds)
    assert loaded.is_stale(now=1000.0 + MRR.max_age_seconds + 0.001)


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
    """Many simultaneous scrapes share one refresh: counted on the Postgres server."""
    exporter = start_exporter(
        "revenue",
        database.exporter_url,
        redis_db.exporter_url,
        config_file=write_config("min_interval_seconds: 60\n"),
    )
    # After the first folds (backfill.py), which ran their own statements: count the refresh's.
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
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


def _blocked_exporter_backends(admin_url: str) -> int:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE usename = 'finance_exporter' AND wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_scrapes_are_served_the_previous_snapshot_while_a_refresh_is_blocked(
    database: Database, redis_db: RedisDb, start_exporter: StartExporter
) -> None:
    """A refresh stuck behind a table lock the test holds: another scrape still answers, with
    the previous snapshot, while the refresh is provably still waiting on the lock."""
    clock = FakeClock()
    exporter = start_exporter("revenue", database.exporter_url, redis_db.exporter_url, clock=clock)
    first = scrape(exporter)
    assert set(first["finance_exporter_query_runs_total"].values()) == {1.0}
    with psycopg.connect(database.admin_url) as locker:
        locker.execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
        clock.advance(3600.0)
        leader_result: list[dict[str, object]] = []
        leader = threading.Thread(target=lambda: leader_result.append(dict(scrape(exporter))))
        leader.start()
        for _ in range(500):  # poll every 10 ms, at most 5 s
            if _blocked_exporter_backends(database.admin_url) > 0:
                break
            threading.Event().wait(0.01)
        assert _blocked_exporter_backends(database.admin_url) == 1
        during = scrape(exporter)
        # Still blocked after the concurrent scrape returned: it did not wait for the refresh.
        assert _blocked_exporter_backends(database.admin_url) == 1 and leader.is_alive()
        locker.rollback()
    leader.join(timeout=30)
    assert during["finance_exporter_query_runs_total"] == first["finance_exporter_query_runs_total"]
    assert during["finance_exporter_snapshot_age_seconds"] == {(): 3600.0}
    assert len(leader_result) == 1
    runs = leader_result[0]["finance_exporter_query_runs_total"]
    assert isinstance(runs, dict) and set(runs.values()) == {2.0}
