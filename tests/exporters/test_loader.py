"""QueryLoader: each query within its budget, failures kept apart, totals checkpointed."""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finance_exporter.checkpoint import CheckpointStore
from finance_exporter.domains.portfolio import MARKET_DATA_AGE, ORDER_QUEUE
from finance_exporter.domains.revenue import PAYMENTS_GROSS
from finance_exporter.loader import QueryLoader
from finance_exporter.sources.postgres import PostgresSource
from finance_exporter.sources.redis import RedisSource
from finance_exporter.spec import MetricSpec, QuerySpec
from support.clock import FakeClock
from support.datastores import Database, RedisDb
from support.servers import free_port

TIERS = QuerySpec(
    name="tiers",
    source="postgres",
    metric=MetricSpec(
        name="finance_users_by_tier", kind="gauge", help="Users.", labels=("tier",), max_series=4
    ),
    sql="SELECT tier, count(*) AS value FROM users GROUP BY tier",
)


def _redis(url: str) -> RedisSource:
    return RedisSource(url, timeout_seconds=2.0)


def _loader_events(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, str | None]]:
    return [
        (r.getMessage(), r.__dict__["query"], r.__dict__.get("reason"))
        for r in caplog.records
        if r.name == "finance_exporter.loader"
    ]


def test_no_time_left_before_the_deadline_skips_every_query_as_deadline(
    postgres: PostgresSource, redis_db: RedisDb, tmp_path: Path
) -> None:
    clock = FakeClock()
    redis = _redis(redis_db.exporter_url)
    loader = QueryLoader(
        [TIERS, ORDER_QUEUE], postgres, redis, CheckpointStore(tmp_path / "c.json"), clock
    )
    snapshot = loader.load(loader.initial(), deadline=clock.monotonic() + 0.01)
    assert {name: s.errors_total for name, s in snapshot.queries.items()} == {
        "tiers": {"deadline": 1},
        "order_queue": {"deadline": 1},
    }
    assert {name: s.runs_total for name, s in snapshot.queries.items()} == {
        "tiers": 1,
        "order_queue": 1,
    }
    # A skipped query says nothing about its source: it stays as it was (down, at first).
    assert snapshot.source_up == {"postgres": False, "redis": False}
    assert snapshot.taken_at == clock.monotonic()
    redis.close()


def test_a_refused_source_fails_its_queries_and_spares_the_others(
    postgres: PostgresSource, database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, tier) VALUES ('a@example.com', 'pro')")
    clock = FakeClock()
    nothing_listens = _redis(f"redis://127.0.0.1:{free_port()}/0")
    loader = QueryLoader(
        [ORDER_QUEUE, TIERS, MARKET_DATA_AGE],
        postgres,
        nothing_listens,
        CheckpointStore(None),
        clock,
    )
    caplog.set_level(logging.INFO, logger="finance_exporter.loader")
    snapshot = loader.load(loader.initial(), deadline=clock.monotonic() + 10)
    assert snapshot.source_up == {"postgres": True, "redis": False}
    assert {name: dict(s.errors_total) for name, s in snapshot.queries.items()} == {
        "order_queue": {"unavailable": 1},
        "tiers": {},
        "market_data_age": {"unavailable": 1},
    }
    assert snapshot.queries["tiers"].values == {("pro",): (Decimal(1),)}
    assert _loader_events(caplog) == [
        ("query failing", "order_queue", "unavailable"),
        ("query failing", "market_data_age", "unavailable"),
    ]


def test_a_failing_query_keeps_its_values_and_its_recovery_is_logged_once(
    postgres: PostgresSource, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, tier) VALUES ('a@example.com', 'basic')")
    clock = FakeClock()
    loader = QueryLoader([TIERS], postgres, None, CheckpointStore(None), clock)
    caplog.set_level(logging.INFO, logger="finance_exporter.loader")
    good = loader.load(loader.initial(), deadline=clock.monotonic() + 10)
    loaded_at = clock.time()
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON users FROM finance_exporter")
    clock.advance(30)
    failed = loader.load(good, deadline=clock.monotonic() + 10)
    clock.advance(30)
    failed = loader.load(failed, deadline=clock.monotonic() + 10)
    state = failed.queries["tiers"]
    assert state.values == {("basic",): (Decimal(1),)}
    assert (state.loaded_at, state.last_success, state.runs_total) == (loaded_at, False, 3)
    assert state.errors_total == {"query": 2}
    # A query error is the query's fault: its source still answered.
    assert failed.source_up == {"postgres": True}
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("GRANT SELECT ON users TO finance_exporter")
    clock.advance(30)
    recovered = loader.load(failed, deadline=clock.monotonic() + 10).queries["tiers"]
    assert (recovered.loaded_at, recovered.last_success) == (clock.time(), True)
    assert _loader_events(caplog) == [
        ("query failing", "tiers", "query"),
        ("query recovered", "tiers", None),
    ]


def test_a_fold_is_checkpointed_and_restored_only_for_the_same_query(
    postgres: PostgresSource, database: Database, tmp_path: Path
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, tier) VALUES ('a@example.com', 'pro')")
        conn.execute(
            "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
            "VALUES (1, 12.50, 'USD', 'pro', 'card', 'web', 'succeeded')"
        )
    clock = FakeClock()
    store = CheckpointStore(tmp_path / "revenue.json")
    loader = QueryLoader([PAYMENTS_GROSS], postgres, None, store, clock)
    initial = loader.initial()
    snapshot = loader.load(initial, deadline=clock.monotonic() + 10)
    loader.save_checkpoint(initial, snapshot)
    folded = snapshot.queries["payments_gross"]
    assert folded.values == {("USD", "pro", "web"): (Decimal("12.50"),)}
    assert folded.totals is not None and folded.totals.watermark > 0
    assert folded.watermark_since == clock.time()

    restored = QueryLoader([PAYMENTS_GROSS], postgres, None, store, clock).initial()
    state = restored.queries["payments_gross"]
    assert (state.totals, state.database) == (folded.totals, folded.database)
    assert state.values == {}  # nothing is served before the first refresh

    changed = replace(PAYMENTS_GROSS, sql=PAYMENTS_GROSS.sql.replace("sum(amount)", "sum(1)"))
    fresh = QueryLoader([changed], postgres, None, store, clock).initial()
    assert fresh.queries["payments_gross"].totals is None
