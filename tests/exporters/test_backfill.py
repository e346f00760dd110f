"""The first fold runs in the background, in chunks, resumes after a restart and ends exact."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finance_exporter.backfill import Backfill
from finance_exporter.checkpoint import CheckpointStore
from finance_exporter.cli import Exporter
from finance_exporter.loader import QueryLoader
from finance_exporter.snapshot import SystemClock
from finance_exporter.sources.postgres import PostgresSource
from finance_exporter.spec import MetricSpec, QuerySpec, xid_range
from support.datastores import Database, RedisDb, StartExporter
from support.exposition import Samples, by_label, scrape
from support.rows import add_payments
from support.servers import free_port

Conn = psycopg.Connection[tuple[object, ...]]

# Slow on purpose: every row costs 2 ms, so a chunk of more than about 100 rows outlasts the
# 0.2 s statement timeout the tests give the fold, and the whole history cannot be one statement.
SLOW = QuerySpec(
    name="slow_payments",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_slow_payments_total",
        kind="counter",
        help="Payments.",
        labels=("status",),
        max_series=4,
    ),
    sql=(
        "SELECT p.status, count(*) AS value FROM payments AS p "
        "WHERE pg_sleep(0.002 * (p.id > 0)::int)::text = '' "
        f"AND {xid_range('p.final_xid')} GROUP BY p.status"
    ),
)
RECOUNT = "SELECT status, count(*) FROM payments WHERE status <> 'pending' GROUP BY 1"

# The payments query behind a gate: its chunk waits while a test holds advisory lock 42.
GATE = 42
GATED = f"""
min_interval_seconds: 0.001
queries:
  payments:
    sql: |
      SELECT p.status, p.method, count(*) AS value
      FROM payments AS p CROSS JOIN (SELECT pg_advisory_xact_lock_shared({GATE})) AS gate
      WHERE {xid_range("p.final_xid")}
      GROUP BY p.status, p.method
"""


def _recount(database: Database) -> dict[tuple[str, ...], tuple[Decimal, ...]]:
    with psycopg.connect(database.admin_url) as conn:
        return {(str(r[0]),): (Decimal(str(r[1])),) for r in conn.execute(RECOUNT).fetchall()}


def _backfill(source: PostgresSource, store: CheckpointStore, timeout: float) -> Backfill:
    return Backfill(source, store, SystemClock(), timeout_seconds=timeout)


def _run_until_idle(backfill: Backfill, limit: int = 500) -> int:
    """Step the fold to its end; return the steps taken. A failure fails the test."""
    for steps in range(limit):
        outcome = backfill.step()
        assert outcome != "failed"
        if outcome == "idle":
            return steps
    raise AssertionError(f"the fold did not finish in {limit} steps")


def _events(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, object]]:
    return [
        r.__dict__
        for r in caplog.records
        if r.name == "finance_exporter.backfill" and r.getMessage() == message
    ]


def test_first_fold_slower_than_its_timeout_completes_in_chunks_and_equals_a_recount(
    database: Database, postgres: PostgresSource, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        add_payments(conn, 300)  # 300 transactions, 0.6 s of fold: three timeouts' worth
        add_payments(conn, 40, "failed")
    backfill = _backfill(postgres, CheckpointStore(tmp_path / "c.json"), timeout=0.2)
    backfill.start(SLOW)
    with caplog.at_level(logging.DEBUG, logger="finance_exporter.backfill"):
        _run_until_idle(backfill)
    folded = backfill.take(SLOW.name)
    assert folded is not None
    assert folded.totals.values == _recount(database)
    assert len(_events(caplog, "backfill chunk timeout")) >= 1
    chunks = _events(caplog, "backfill chunk")
    assert sum(1 for c in chunks if int(str(c["rows"])) > 0) >= 3  # the rows took several chunks
    # The chunks tile [0, target) exactly: each starts where the previous one ended.
    assert [c["low"] for c in chunks] == [0, *(c["high"] for c in chunks[:-1])]
    [done] = _events(caplog, "backfill done")
    assert chunks[-1]["high"] == done["target"] == folded.totals.watermark


def test_a_single_transaction_longer_than_the_timeout_finishes_with_a_longer_timeout(
    database: Database, postgres: PostgresSource, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database.admin_url) as conn:
        add_payments(conn, 150)  # one transaction, one xid: 0.3 s that no chunk can split
    backfill = _backfill(postgres, CheckpointStore(tmp_path / "c.json"), timeout=0.1)
    backfill.start(SLOW)
    with caplog.at_level(logging.INFO, logger="finance_exporter.backfill"):
        _run_until_idle(backfill)
    folded = backfill.take(SLOW.name)
    assert folded is not None
    assert folded.totals.values == {("succeeded",): (Decimal(150),)}
    timeouts = _events(caplog, "backfill chunk timeout")
    # Narrowed down to one transaction id, then the timeout doubled until the chunk fit.
    assert timeouts[-1]["chunk_span"] == 1
    assert float(str(timeouts[-1]["timeout_seconds"])) >= 0.4


def test_a_restarted_fold_resumes_from_its_checkpoint_and_ends_exact(
    database: Database, postgres: PostgresSource, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        add_payments(conn, 300)
    path = tmp_path / "revenue.json"
    first = _backfill(postgres, CheckpointStore(path), timeout=0.2)
    first.start(SLOW)
    folded_rows = 0
    while folded_rows == 0:  # stop ("kill") the first fold after its first chunk with rows
        assert first.step() == "ran"
        saved = json.loads(path.read_text())["backfills"][SLOW.name]
        folded_rows = sum(int(row["values"][0]) for row in saved["totals"])
    first.stop()
    assert 0 < folded_rows < 300
    resumed_at = saved["watermark"]

    source = PostgresSource(database.exporter_url, "test-backfill-2")
    second = _backfill(source, CheckpointStore(path), timeout=0.2)
    loader = QueryLoader(
        [SLOW], source, None, CheckpointStore(path), SystemClock(), backfill=second
    )
    initial = loader.initial()
    assert initial.queries[SLOW.name].backfill_ratio == 0.0
    with caplog.at_level(logging.DEBUG, logger="finance_exporter.backfill"):
        _run_until_idle(second)
    [resumed] = _events(caplog, "backfill resumed")
    assert resumed["watermark"] == resumed_at
    chunks = _events(caplog, "backfill chunk")
    assert chunks[0]["low"] == resumed_at  # not from 0
    snapshot = loader.load(initial, deadline=SystemClock().monotonic() + 10)
    assert snapshot.queries[SLOW.name].values == _recount(database)
    assert snapshot.queries[SLOW.name].backfill_ratio is None
    source.close()


def _waiting_on_gate(admin: Conn) -> bool:
    row = admin.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%-backfill' "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
    ).fetchone()
    return row is not None and int(str(row[0])) == 1


def _wait_for(predicate: Callable[[], bool]) -> None:
    """Poll a condition the fold reaches on its own thread (every 50 ms, at most 30 s)."""
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached within 30 s"
        time.sleep(0.05)


def _query_gauge(samples: Samples, name: str) -> dict[str, float]:
    return {key[0]: value for key, value in by_label(samples, name, "query").items()}


@contextlib.contextmanager
def _gated_exporter(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    config: Path,
) -> Iterator[tuple[Conn, Exporter]]:
    """A revenue exporter whose `payments` fold is blocked on the gate an admin connection holds.

    20 payments exist before it starts; the gate opens when the test leaves the block.
    """
    with psycopg.connect(database.admin_url, autocommit=True) as admin:
        add_payments(admin, 20)
        admin.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        exporter = start_exporter(
            "revenue",
            database.exporter_url,
            redis_db.exporter_url,
            config_file=config,
            backfilled=False,
        )
        _wait_for(lambda: _waiting_on_gate(admin))
        yield admin, exporter
        admin.execute("SELECT pg_advisory_unlock(%s)", (GATE,))


@pytest.fixture
def gated(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
) -> Iterator[tuple[Conn, Exporter]]:
    """The gated exporter, refreshing on every scrape."""
    with _gated_exporter(database, redis_db, start_exporter, write_config(GATED)) as gated:
        yield gated


def test_a_completed_fold_is_served_at_once_not_after_the_refresh_interval(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
) -> None:
    """A fold that completes after the first refresh expires the snapshot: the next scrape
    serves its counter, not one min_interval (here 300 s) later."""
    config = write_config(GATED.replace("min_interval_seconds: 0.001", "min_interval_seconds: 300"))
    with _gated_exporter(database, redis_db, start_exporter, config) as (admin, exporter):
        assert by_label(scrape(exporter), "finance_payments_total", "status", "method") == {}
        admin.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        assert exporter.wait_backfilled(timeout_seconds=30)
        samples = scrape(exporter)
        assert by_label(samples, "finance_payments_total", "status", "method") == {
            ("succeeded", "card"): 20.0
        }


def test_while_a_fold_runs_metrics_answers_with_progress_and_no_partial_counter(
    gated: tuple[Conn, Exporter],
) -> None:
    admin, exporter = gated
    samples = scrape(exporter)  # served while the fold's chunk is still blocked
    assert _waiting_on_gate(admin)
    assert _query_gauge(samples, "finance_exporter_backfill_in_progress") == {
        "payments_gross": 0.0,  # folded before the gated query: served
        "refunds": 0.0,
        "payments": 1.0,
        "signups": 1.0,  # queued behind it
        "churns": 1.0,
    }
    progress = _query_gauge(samples, "finance_exporter_backfill_progress_ratio")
    assert progress["payments_gross"] == 1.0
    assert 0.0 <= progress["payments"] < 1.0
    assert progress["signups"] == 0.0
    assert by_label(samples, "finance_payments_total", "status", "method") == {}
    assert by_label(samples, "finance_payments_gross_amount_total", "currency") == {("EUR",): 20.0}


def test_rows_committed_during_the_fold_are_counted_exactly_once(
    gated: tuple[Conn, Exporter],
) -> None:
    admin, exporter = gated
    add_payments(admin, 7)  # final above the fold's target
    add_payments(admin, 3, "failed")
    scrape(exporter)  # a refresh during the fold must not count them either
    admin.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
    assert exporter.wait_backfilled(timeout_seconds=30)
    samples = scrape(exporter)
    assert by_label(samples, "finance_payments_total", "status", "method") == {
        ("succeeded", "card"): 27.0,
        ("failed", "card"): 3.0,
    }
    assert _query_gauge(samples, "finance_exporter_backfill_in_progress")["payments"] == 0.0
    # A later refresh adds nothing: the rows were counted once, by the fold or after it.
    assert by_label(scrape(exporter), "finance_payments_total", "status", "method") == {
        ("succeeded", "card"): 27.0,
        ("failed", "card"): 3.0,
    }


def _three_payments_folded_by_a_loader(
    database: Database, postgres: PostgresSource, tmp_path: Path
) -> tuple[SystemClock, CheckpointStore, Backfill, QueryLoader]:
    """Three payments, and a loader of SLOW whose fold is stepped by the test (no thread)."""
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        add_payments(conn, 3)
    clock = SystemClock()
    store = CheckpointStore(tmp_path / "c.json")
    backfill = _backfill(postgres, store, timeout=5.0)
    return (
        clock,
        store,
        backfill,
        QueryLoader([SLOW], postgres, None, store, clock, backfill=backfill),
    )


def test_a_database_whose_ids_went_back_is_folded_again_in_the_background(
    database: Database, postgres: PostgresSource, tmp_path: Path
) -> None:
    clock, _store, backfill, loader = _three_payments_folded_by_a_loader(
        database, postgres, tmp_path
    )
    initial = loader.initial()
    _run_until_idle(backfill)
    served = loader.load(initial, deadline=clock.monotonic() + 10)
    state = served.queries[SLOW.name]
    assert state.values == {("succeeded",): (Decimal(3),)}
    assert state.totals is not None
    # As after a restore: the saved watermark is ahead of the database's transaction ids.
    ahead = replace(state, totals=replace(state.totals, watermark=state.totals.watermark + 10**9))
    recounting = loader.load(
        replace(served, queries={SLOW.name: ahead}), deadline=clock.monotonic() + 10
    )
    state = recounting.queries[SLOW.name]
    # Nothing is served while the history is folded again, and the fold is in progress.
    assert (state.values, state.totals, state.loaded_at, state.backfill_ratio) == (
        {},
        None,
        None,
        0,
    )
    _run_until_idle(backfill)
    state = loader.load(recounting, deadline=clock.monotonic() + 10).queries[SLOW.name]
    assert state.values == {("succeeded",): (Decimal(3),)}
    assert state.backfill_ratio is None


def test_while_every_query_is_being_folded_up_follows_the_folds(
    database: Database, postgres: PostgresSource, tmp_path: Path
) -> None:
    """An exporter whose queries are all incremental runs none of them until their folds are
    done: finance_exporter_up must come from the folds. It used to keep its initial 0 for the
    whole fold, and a fold longer than 2 minutes fired ExporterDatastoreDown (critical)."""
    clock, store, backfill, loader = _three_payments_folded_by_a_loader(
        database, postgres, tmp_path
    )
    initial = loader.initial()
    # Before any word from Postgres it reads down, as every exporter starts.
    assert loader.load(initial, clock.monotonic() + 10).source_up == {"postgres": False}
    assert backfill.step() == "ran"  # the fold's start: its target, from Postgres
    snapshot = loader.load(initial, clock.monotonic() + 10)
    assert snapshot.queries[SLOW.name].backfill_ratio is not None  # still folding
    assert snapshot.source_up == {"postgres": True}

    # The same fold against a Postgres that refuses connections: up reads 0.
    refused = PostgresSource(f"postgresql://exporter@127.0.0.1:{free_port()}/x", "test-refused")
    down = _backfill(refused, store, timeout=1.0)
    loader = QueryLoader([SLOW], refused, None, store, clock, backfill=down)
    initial = loader.initial()  # starts the fold
    assert down.step() == "failed"
    assert down.failing(SLOW.name)
    snapshot = loader.load(initial, clock.monotonic() + 10)
    assert snapshot.source_up == {"postgres": False}
    assert snapshot.queries[SLOW.name].backfill_failing


# The payments query reading a table that does not exist yet (as after a schema change).
FAILING = GATED.replace(f"pg_advisory_xact_lock_shared({GATE})", "count(*) FROM fold_gate")
assert FAILING != GATED


def test_a_fold_that_keeps_failing_says_so_and_recovers_by_itself(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
) -> None:
    """A fold whose SQL fails (here a table the query reads does not exist yet, as after a
    schema change) is flagged by finance_exporter_backfill_failing, which ExporterBackfillFailing
    alerts on; once the table exists the retried fold completes with exact totals."""
    with psycopg.connect(database.admin_url, autocommit=True) as admin:
        add_payments(admin, 5)
        exporter = start_exporter(
            "revenue",
            database.exporter_url,
            redis_db.exporter_url,
            config_file=write_config(FAILING),
            backfilled=False,
        )
        _wait_for(
            lambda: (
                _query_gauge(scrape(exporter), "finance_exporter_backfill_failing").get("payments")
                == 1.0
            )
        )
        samples = scrape(exporter)
        assert _query_gauge(samples, "finance_exporter_backfill_failing")["payments_gross"] == 0.0
        assert _query_gauge(samples, "finance_exporter_backfill_in_progress")["payments"] == 1.0
        assert by_label(samples, "finance_payments_total", "status", "method") == {}
        assert by_label(samples, "finance_exporter_up", "source")[("postgres",)] == 1.0

        admin.execute("CREATE TABLE fold_gate (id int)")
        admin.execute("GRANT SELECT ON fold_gate TO PUBLIC")
        # Retried within RETRY_SECONDS (5 s); wait_backfilled counts a failing fold as settled.
        _wait_for(lambda: bool(by_label(scrape(exporter), "finance_payments_total", "status")))
        samples = scrape(exporter)
        assert _query_gauge(samples, "finance_exporter_backfill_failing")["payments"] == 0.0
        assert by_label(samples, "finance_payments_total", "status", "method") == {
            ("succeeded", "card"): 5.0
        }
