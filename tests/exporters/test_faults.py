"""Datastores stopped, slow, refusing or holding garbage: /metrics answers 200 and recovers."""

from __future__ import annotations

import logging
import math
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from finance_demo.access import set_postgres_exporter_password
from finance_demo.migrate import migrate
from finance_exporter.cli import Exporter
from support.datastores import (
    Database,
    RedisDb,
    StartExporter,
    create_redis_exporter_user,
    tempdir,
)
from support.exposition import Samples, by_label, fetch, metrics_url, parse, scrape
from support.servers import PostgresServer, RedisServer

FAST_REFRESH = "min_interval_seconds: 0.001\n"
SCRAPE_TIMEOUT = {"X-Prometheus-Scrape-Timeout-Seconds": "3"}


class Stack:
    """A Postgres and a Redis of this module's own, so tests may stop and start them."""

    def __init__(self, root: Path) -> None:
        self.postgres = PostgresServer(root / "pg")
        self.redis = RedisServer(root / "redis")
        self.pg_password = secrets.token_urlsafe(12)
        self.redis_password = secrets.token_urlsafe(12)

    def start(self) -> None:
        self.postgres.init()
        self.postgres.start()
        with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
            migrate(conn)
            set_postgres_exporter_password(conn, self.pg_password)
            conn.execute("INSERT INTO users (email, tier) VALUES ('a@example.com', 'pro')")
            conn.execute(
                "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
                "VALUES (1, 12.50, 'USD', 'pro', 'card', 'web', 'succeeded')"
            )
        self.redis.start()
        create_redis_exporter_user(redis.Redis.from_url(self.redis.url()), self.redis_password)

    @property
    def pg_url(self) -> str:
        return self.postgres.url("finance_exporter", self.pg_password)

    @property
    def redis_url(self) -> str:
        return self.redis.url("finance_exporter", self.redis_password)

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.postgres.url(), autocommit=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = tempdir("finance-faults-")
    root.chmod(0o755)
    own = Stack(root)
    own.start()
    yield own
    own.postgres.stop()
    own.redis.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def both_running(stack: Stack) -> Stack:
    """The stack with both servers up, whatever the previous test left."""
    if stack.postgres.pid is None:
        stack.postgres.start()
    if stack.redis.process is None:
        stack.redis.start()
        create_redis_exporter_user(redis.Redis.from_url(stack.redis.url()), stack.redis_password)
    return stack


@pytest.fixture
def revenue(
    both_running: Stack, start_exporter: StartExporter, write_config: Callable[[str], Path]
) -> tuple[Stack, Exporter]:
    """The revenue exporter on the module's stack, after one good scrape."""
    exporter = start_exporter(
        "revenue",
        both_running.pg_url,
        both_running.redis_url,
        config_file=write_config(FAST_REFRESH),
    )
    assert up(timed_scrape(exporter)[0]) == {"postgres": 1.0}
    return both_running, exporter


def timed_scrape(exporter: Exporter) -> tuple[Samples, float]:
    started = time.monotonic()
    samples = scrape(exporter, headers=SCRAPE_TIMEOUT)
    return samples, time.monotonic() - started


def up(samples: Samples) -> dict[str, float]:
    return {k[0]: v for k, v in by_label(samples, "finance_exporter_up", "source").items()}


def errors(samples: Samples, query: str, reason: str) -> float:
    return by_label(samples, "finance_exporter_query_errors_total", "query", "reason").get(
        (query, reason), 0.0
    )


def exporter_connections(stack: Stack) -> int:
    with stack.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'finance_exporter'"
        ).fetchone()
        assert row is not None
        return int(str(row[0]))


def test_postgres_stopped_answers_fast_with_up_zero_then_recovers_without_restart(
    revenue: tuple[Stack, Exporter],
) -> None:
    stack, exporter = revenue
    stack.postgres.stop()

    first, elapsed = timed_scrape(exporter)
    assert elapsed < 3.0
    assert up(first) == {"postgres": 0.0}
    assert errors(first, "payments_gross", "unavailable") == 1.0
    # The last good value is still served (younger than max_age).
    assert by_label(first, "finance_payments_gross_amount_total", "currency") == {("USD",): 12.5}
    second, elapsed = timed_scrape(exporter)
    assert elapsed < 3.0
    assert errors(second, "payments_gross", "unavailable") == 2.0

    stack.postgres.start()
    recovered, _ = timed_scrape(exporter)
    assert up(recovered) == {"postgres": 1.0}
    assert (
        by_label(recovered, "finance_exporter_query_success", "query")[("payments_gross",)] == 1.0
    )


def test_locked_table_times_out_within_the_scrape_deadline_then_recovers(
    revenue: tuple[Stack, Exporter],
) -> None:
    stack, exporter = revenue
    with stack.admin() as locker:
        with locker.transaction():
            locker.execute("LOCK TABLE payments IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            samples = scrape(exporter, headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"})
            elapsed = time.monotonic() - started
            assert elapsed < 2.0
            assert up(samples) == {"postgres": 0.0}
            assert errors(samples, "payments_gross", "timeout") == 1.0
    recovered, _ = timed_scrape(exporter)
    assert up(recovered) == {"postgres": 1.0}
    success = by_label(recovered, "finance_exporter_query_success", "query")
    assert set(success.values()) == {1.0}


def test_refused_login_is_unavailable_then_recovers(revenue: tuple[Stack, Exporter]) -> None:
    stack, exporter = revenue
    with stack.admin() as conn:
        conn.execute("ALTER ROLE finance_exporter NOLOGIN")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = 'finance_exporter'"
        )
    try:
        refused, elapsed = timed_scrape(exporter)
        assert elapsed < 3.0
        assert up(refused) == {"postgres": 0.0}
        assert errors(refused, "payments_gross", "unavailable") == 1.0
    finally:
        with stack.admin() as conn:
            conn.execute("ALTER ROLE finance_exporter LOGIN")
    recovered, _ = timed_scrape(exporter)
    assert up(recovered) == {"postgres": 1.0}


def test_no_connection_leak_after_many_fault_cycles(
    both_running: Stack, start_exporter: StartExporter, write_config: Callable[[str], Path]
) -> None:
    stack = both_running
    exporters = [
        start_exporter(name, stack.pg_url, stack.redis_url, config_file=write_config(FAST_REFRESH))
        for name in ("revenue", "signals", "portfolio")
    ]
    for _ in range(5):
        stack.postgres.stop()
        stack.redis.stop()
        for exporter in exporters:
            for _ in range(3):
                timed_scrape(exporter)
        stack.postgres.start()
        stack.redis.start()
        create_redis_exporter_user(redis.Redis.from_url(stack.redis.url()), stack.redis_password)
        for exporter in exporters:
            samples, _ = timed_scrape(exporter)
            assert set(up(samples).values()) == {1.0}
    # One persistent connection per exporter, whatever happened before.
    assert exporter_connections(stack) == 3
    admin = redis.Redis.from_url(stack.redis.url(), decode_responses=True)
    clients = [c for c in admin.client_list() if c.get("user") == "finance_exporter"]
    assert 1 <= len(clients) <= 2  # signals and portfolio read Redis, one pooled connection each


def test_redis_stopped_keeps_postgres_metrics_and_recovers(
    both_running: Stack, start_exporter: StartExporter, write_config: Callable[[str], Path]
) -> None:
    stack = both_running
    redis.Redis.from_url(stack.redis.url()).rpush("orders:queue:high", "1", "2", "3")
    exporter = start_exporter(
        "portfolio", stack.pg_url, stack.redis_url, config_file=write_config(FAST_REFRESH)
    )
    assert by_label(timed_scrape(exporter)[0], "finance_order_queue_depth", "priority") == {
        ("high",): 3.0,
        ("normal",): 0.0,
        ("low",): 0.0,
    }
    stack.redis.stop()
    down, elapsed = timed_scrape(exporter)
    assert elapsed < 3.0
    assert up(down) == {"postgres": 1.0, "redis": 0.0}
    assert errors(down, "order_queue", "unavailable") == 1.0
    assert by_label(down, "finance_exporter_query_success", "query")[("orders",)] == 1.0
    stack.redis.start()
    client = redis.Redis.from_url(stack.redis.url())
    create_redis_exporter_user(client, stack.redis_password)
    client.rpush("orders:queue:low", "9")
    recovered, _ = timed_scrape(exporter)
    assert up(recovered) == {"postgres": 1.0, "redis": 1.0}
    assert by_label(recovered, "finance_order_queue_depth", "priority") == {
        ("high",): 0.0,
        ("normal",): 0.0,
        ("low",): 1.0,
    }


def test_redis_restarted_between_refreshes_is_read_on_a_new_connection_without_error(
    both_running: Stack, start_exporter: StartExporter, write_config: Callable[[str], Path]
) -> None:
    stack = both_running
    exporter = start_exporter(
        "portfolio", stack.pg_url, stack.redis_url, config_file=write_config(FAST_REFRESH)
    )
    assert up(timed_scrape(exporter)[0]) == {"postgres": 1.0, "redis": 1.0}
    # No scrape while it is down: the exporter's connection is stale, not known to be broken.
    stack.redis.stop()
    stack.redis.start()
    create_redis_exporter_user(redis.Redis.from_url(stack.redis.url()), stack.redis_password)
    samples, _ = timed_scrape(exporter)
    assert up(samples) == {"postgres": 1.0, "redis": 1.0}
    failures = {
        key: value
        for key, value in by_label(
            samples, "finance_exporter_query_errors_total", "query", "reason"
        ).items()
        if value
    }
    assert failures == {}


def test_frozen_redis_is_bounded_by_the_scrape_deadline_then_recovers(
    both_running: Stack,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stack = both_running
    admin = redis.Redis.from_url(stack.redis.url())
    admin.delete("orders:queue:high", "orders:queue:normal", "orders:queue:low")
    admin.rpush("orders:queue:high", "1", "2")
    # The Redis socket timeout (5 s) is longer than the scrape deadline (1.5 s - 0.5 s offset):
    # only the deadline can end the read of a server that never answers.
    exporter = start_exporter(
        "portfolio",
        stack.pg_url,
        stack.redis_url,
        config_file=write_config(FAST_REFRESH + "redis_timeout_seconds: 5\n"),
    )
    assert up(timed_scrape(exporter)[0]) == {"postgres": 1.0, "redis": 1.0}
    assert stack.redis.process is not None
    pid = stack.redis.process.pid
    caplog.set_level(logging.INFO, logger="finance_exporter.loader")
    os.kill(pid, signal.SIGSTOP)  # accepts connections (the kernel does), never answers
    try:
        started = time.monotonic()
        status, body = fetch(
            metrics_url(exporter),
            timeout_seconds=5.0,
            headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.5"},
        )
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert status == 200
    assert elapsed < 2.5  # the deadline plus a margin, far below the 5 s socket timeout
    frozen = parse(body)
    assert up(frozen) == {"postgres": 1.0, "redis": 0.0}
    assert by_label(frozen, "finance_exporter_query_success", "query") == {
        ("aum",): 1.0,
        ("daily_return",): 1.0,
        ("var95",): 1.0,
        ("trading_volume",): 1.0,
        ("orders",): 1.0,
        ("open_positions",): 1.0,
        ("order_queue",): 0.0,
        ("market_data_age",): 0.0,
    }
    failures = {
        key: value
        for key, value in by_label(
            frozen, "finance_exporter_query_errors_total", "query", "reason"
        ).items()
        if value
    }
    # The first Redis query spends the budget up to the deadline; the next one is not started.
    assert failures == {("order_queue", "timeout"): 1.0, ("market_data_age", "deadline"): 1.0}
    # The last good queue depth is still served (younger than max_age).
    assert by_label(frozen, "finance_order_queue_depth", "priority") == {
        ("high",): 2.0,
        ("normal",): 0.0,
        ("low",): 0.0,
    }
    events = [
        (r.getMessage(), getattr(r, "query", None), getattr(r, "reason", None))
        for r in caplog.records
        if r.name == "finance_exporter.loader"
    ]
    assert events == [
        ("query failing", "order_queue", "timeout"),
        ("query failing", "market_data_age", "deadline"),
    ]
    recovered, _ = timed_scrape(exporter)
    assert up(recovered) == {"postgres": 1.0, "redis": 1.0}
    assert set(by_label(recovered, "finance_exporter_query_success", "query").values()) == {1.0}


def test_redis_wrong_types_and_garbage_are_skipped_and_counted(
    database: Database, redis_db: RedisDb, start_exporter: StartExporter
) -> None:
    admin = redis.Redis.from_url(redis_db.admin_url)
    now = time.time()
    admin.set("orders:queue:high", "not a list")
    admin.rpush("orders:queue:normal", "1", "2")
    admin.set("signals:active:momentum", "not a set")
    admin.sadd("signals:active:breakout", "11", "12", "13")
    admin.set("md:last_tick:polygon", "garbage")
    admin.set("md:last_tick:binance", "nan")
    admin.rpush("md:last_tick:alpaca", "1")
    admin.set("md:last_tick:oanda", f"{now - 5:.3f}")
    portfolio = start_exporter("portfolio", database.exporter_url, redis_db.exporter_url)
    signals = start_exporter("signals", database.exporter_url, redis_db.exporter_url)

    samples = scrape(portfolio)
    assert up(samples) == {"postgres": 1.0, "redis": 1.0}
    assert by_label(samples, "finance_order_queue_depth", "priority") == {
        ("normal",): 2.0,
        ("low",): 0.0,
    }
    ages = by_label(samples, "finance_market_data_age_seconds", "provider")
    # A list is not a string: MGET answers nil, as for a missing key, and the age is +Inf.
    assert list(ages) == [("alpaca",), ("oanda",)]
    assert ages[("alpaca",)] == math.inf
    assert 5.0 <= ages[("oanda",)] < 30.0
    skipped = by_label(samples, "finance_exporter_skipped_values_total", "query", "reason")
    assert skipped == {
        ("order_queue", "wrong_type"): 1.0,
        ("market_data_age", "not_numeric"): 1.0,
        ("market_data_age", "not_finite"): 1.0,
    }
    samples = scrape(signals)
    assert by_label(samples, "finance_signals_active", "strategy") == {
        ("mean_reversion",): 0.0,
        ("breakout",): 3.0,
        ("sentiment",): 0.0,
        ("ml_ensemble",): 0.0,
    }
    skipped = by_label(samples, "finance_exporter_skipped_values_total", "query", "reason")
    assert skipped == {("signals_active", "wrong_type"): 1.0}


def test_bad_postgres_values_are_skipped_and_counted(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO model_evaluations (model, accuracy) VALUES "
            "('lstm', 'NaN'), ('xgboost', 0.71), ('broken', -0.5)"
        )
    config = write_config(
        """
queries:
  model_accuracy:
    sql: |
      SELECT DISTINCT ON (model) model, accuracy AS value FROM model_evaluations
      ORDER BY model, evaluated_at DESC
  signals_generated:
    sql: |
      SELECT strategy, timeframe, value FROM (VALUES
        (NULL::text, '1m', '1'::text), ('momentum', '1m', NULL), ('momentum', '5m', 'abc'),
        ('breakout', '1h', '4')) AS v (strategy, timeframe, value)
      WHERE '0'::xid8 >= %(low)s::xid8 AND '0'::xid8 < %(high)s::xid8
"""
    )
    exporter = start_exporter(
        "signals", database.exporter_url, redis_db.exporter_url, config_file=config
    )
    samples = scrape(exporter)
    assert by_label(samples, "finance_prediction_accuracy_ratio", "model") == {("xgboost",): 0.71}
    assert by_label(samples, "finance_signals_generated_total", "strategy", "timeframe") == {
        ("breakout", "1h"): 4.0
    }
    skipped = by_label(samples, "finance_exporter_skipped_values_total", "query", "reason")
    assert skipped == {
        ("model_accuracy", "not_finite"): 1.0,
        ("model_accuracy", "negative"): 1.0,
        ("signals_generated", "null_label"): 1.0,
        ("signals_generated", "null"): 1.0,
        ("signals_generated", "not_numeric"): 1.0,
    }
