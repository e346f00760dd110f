"""The seed generator: deterministic, complete, scaled to the plan, and safe to re-run."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg.conninfo import make_conninfo

from finance_demo.catalog import ALLOWED, MODELS, PRIORITIES, PROVIDERS, STRATEGIES, TABLES
from finance_demo.cli import main
from finance_demo.migrate import migrate
from finance_demo.seed import SeedPlan, seed_postgres, seed_redis

ANCHOR = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PLAN = SeedPlan(payments=10_000, seed=42, anchor=ANCHOR)
Row = tuple[object, ...]


def _seed(url: str, plan: SeedPlan = PLAN) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return seed_postgres(conn, plan)


def _scalar(url: str, sql: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql.encode()).fetchone()
    assert row is not None
    return row[0]


def _digests(url: str) -> dict[str, str]:
    """md5 of every table's rows in key order, without the xid columns (they differ by run)."""
    result = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in TABLES:
            columns = [
                str(row[0])
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND data_type <> 'xid8' ORDER BY ordinal_position",
                    (table,),
                )
            ]
            key = "portfolio_id, day" if table == "portfolio_daily_snapshots" else "id"
            row = conn.execute(
                f"SELECT count(*), md5(string_agg(row({', '.join(columns)})::text, ','"
                f" ORDER BY {key})) FROM {table}".encode()
            ).fetchone()
            assert row is not None
            result[table] = f"{row[0]}:{row[1]}"
    return result


@pytest.fixture
def twin_pg_url(pg_admin_url: str) -> Iterator[str]:
    """A second fresh, migrated database on the same server, dropped afterwards."""
    name = f"twin_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0'.encode())
    url = make_conninfo(pg_admin_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def test_same_seed_and_anchor_give_identical_tables(pg_admin_url: str, twin_pg_url: str) -> None:
    # A different plan shape in the twin (no hash or merge joins, random() already used) must
    # not matter: the draws happen in one fixed order whatever the plan.
    first = _seed(pg_admin_url)
    with psycopg.connect(twin_pg_url, autocommit=True) as conn:
        conn.execute("SET enable_hashjoin = off")
        conn.execute("SET enable_mergejoin = off")
        conn.execute("SELECT random()")
        second = seed_postgres(conn, PLAN)
    assert first == second
    assert _digests(pg_admin_url) == _digests(twin_pg_url)


def test_different_seed_gives_different_tables(pg_admin_url: str, twin_pg_url: str) -> None:
    _seed(pg_admin_url)
    _seed(twin_pg_url, SeedPlan(payments=PLAN.payments, seed=43, anchor=ANCHOR))
    first, second = _digests(pg_admin_url), _digests(twin_pg_url)
    assert [table for table in TABLES if first[table] == second[table]] == []


def _schema_checks(url: str) -> dict[tuple[str, str], set[str]]:
    """Allowed values of every `column IN (...)` CHECK constraint, read from the database."""
    found: dict[tuple[str, str], set[str]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table, definition in conn.execute(
            "SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'c' AND conrelid = ANY(%s::regclass[])",
            (list(TABLES),),
        ):
            match = re.search(r"\((\w+) = ANY \(ARRAY\[(.*?)\]\)\)", str(definition))
            if match:
                values = set(re.findall(r"'([^']*)'::text", match.group(2)))
                found[(str(table), match.group(1))] = values
    return found


def test_every_check_allowed_value_appears(pg_admin_url: str) -> None:
    _seed(pg_admin_url)
    checks = _schema_checks(pg_admin_url)
    # The catalogue the generator draws from lists exactly what the schema allows.
    assert {key: set(values) for key, values in ALLOWED.items()} == checks
    missing = {}
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for (table, column), allowed in checks.items():
            seen = {row[0] for row in conn.execute(f"SELECT DISTINCT {column} FROM {table}")}
            if allowed - seen:
                missing[(table, column)] = allowed - seen
    assert missing == {}


def test_counts_follow_the_plan(pg_admin_url: str) -> None:
    counts = _seed(pg_admin_url)
    assert list(counts) == list(TABLES)
    assert counts["users"] == PLAN.users == 1_000
    assert counts["subscriptions"] == _scalar(
        pg_admin_url, "SELECT count(*) FROM users WHERE tier <> 'free'"
    )
    assert counts["payments"] == 10_000
    succeeded = _scalar(pg_admin_url, "SELECT count(*) FROM payments WHERE status = 'succeeded'")
    assert isinstance(succeeded, int)
    assert 0.015 * succeeded <= counts["refunds"] <= 0.025 * succeeded
    assert counts["signals"] == PLAN.signals == 2_000
    assert counts["model_evaluations"] == 30 * len(MODELS)
    assert counts["portfolios"] == PLAN.portfolios == 333
    assert counts["positions"] == 5 * counts["portfolios"]
    assert counts["portfolio_daily_snapshots"] == 30 * counts["portfolios"]
    assert counts["orders"] == 5_000
    assert counts["trades"] == _scalar(
        pg_admin_url, "SELECT count(*) FROM orders WHERE status = 'filled'"
    )
    bad_refunds = (
        "SELECT count(*) FROM refunds AS r JOIN payments AS p ON p.id = r.payment_id"
        " WHERE p.status <> 'succeeded' OR r.amount > p.amount"
    )
    assert _scalar(pg_admin_url, bad_refunds) == 0
    per_model = (
        "SELECT min(n) = 30 AND max(n) = 30"
        " FROM (SELECT count(*) AS n FROM model_evaluations GROUP BY model) AS m"
    )
    assert _scalar(pg_admin_url, per_model) is True


def test_small_plans_keep_their_minimums() -> None:
    plan = SeedPlan(payments=100, anchor=ANCHOR)
    assert (plan.users, plan.signals, plan.portfolios) == (200, 500, 66)
    with pytest.raises(ValueError, match="timezone"):
        SeedPlan(payments=100, anchor=datetime(2025, 6, 1))
    with pytest.raises(ValueError, match="payments"):
        SeedPlan(payments=0, anchor=ANCHOR)


# (description, SQL returning true when the distribution looks as specified)
DISTRIBUTIONS = (
    (
        "payments ~92/6/2% succeeded/failed/pending",
        "SELECT abs(avg((status = 'succeeded')::int) - 0.92) < 0.02"
        " AND abs(avg((status = 'failed')::int) - 0.06) < 0.015"
        " AND abs(avg((status = 'pending')::int) - 0.02) < 0.01 FROM payments",
    ),
    (
        "list prices by plan",
        "SELECT bool_and(amount IN (9.99, 99.90)) FILTER (WHERE plan = 'basic')"
        " AND bool_and(amount IN (49.99, 499.90)) FILTER (WHERE plan = 'pro')"
        " AND count(*) FILTER (WHERE plan = 'enterprise' AND amount = 499.00) > 0"
        " FROM subscriptions",
    ),
    (
        "~5% users churned, with churned_at",
        "SELECT abs(avg((status = 'churned')::int) - 0.05) < 0.02"
        " AND bool_and((status = 'churned') = (churned_at IS NOT NULL)) FROM users",
    ),
    (
        "a good share of active users seen in the last 30 days",
        "SELECT avg((last_active_at >= %(anchor)s - interval '30 days')::int) > 0.5"
        " FROM users WHERE status = 'active'",
    ),
    (
        "~85% of signals closed with an outcome",
        "SELECT abs(avg((status = 'closed')::int) - 0.85) < 0.03 FROM signals",
    ),
    (
        "generation time spans the histogram buckets 0.05..30",
        "SELECT min(generation_seconds) >= 0.02 AND min(generation_seconds) < 0.05"
        " AND max(generation_seconds) > 30 AND max(generation_seconds) <= 40 FROM signals",
    ),
    (
        "orders mostly filled, a few still working",
        "SELECT avg((status = 'filled')::int) > 0.8"
        " AND avg((status IN ('open', 'pending'))::int) BETWEEN 0.005 AND 0.05 FROM orders",
    ),
    (
        "daily returns mostly within +-3%, some negative",
        "SELECT avg((abs(daily_return) <= 0.03)::int) > 0.95 AND count(*) FILTER"
        " (WHERE daily_return < 0) > 0.3 * count(*) FROM portfolio_daily_snapshots",
    ),
    (
        "VaR95 a few percent of value",
        "SELECT avg(var95_usd / value_usd) BETWEEN 0.01 AND 0.05 AND min(var95_usd) > 0"
        " FROM portfolio_daily_snapshots",
    ),
    (
        "snapshots cover the 30 days ending on the anchor's date",
        "SELECT min(day) = %(day)s::date - 29 AND max(day) = %(day)s::date"
        " FROM portfolio_daily_snapshots",
    ),
    (
        "accuracy between 0.45 and 0.9",
        "SELECT min(accuracy) >= 0.45 AND max(accuracy) <= 0.9 FROM model_evaluations",
    ),
    (
        "trade notional is quantity x price (x100 for options)",
        "SELECT bool_and(notional_usd = round(quantity * price"
        " * CASE segment WHEN 'options' THEN 100 ELSE 1 END, 2)) FROM trades",
    ),
)


def test_distributions_are_realistic(pg_admin_url: str) -> None:
    _seed(pg_admin_url)
    failed = []
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for description, sql in DISTRIBUTIONS:
            row = conn.execute(sql.encode(), {"anchor": ANCHOR, "day": ANCHOR.date()}).fetchone()
            if row is None or row[0] is not True:
                failed.append(description)
    assert failed == []


# (table, timestamp columns): all within the 365 days before the anchor.
TIMESTAMPS = (
    ("users", ("created_at", "last_active_at", "churned_at")),
    ("subscriptions", ("started_at", "canceled_at")),
    ("payments", ("created_at",)),
    ("refunds", ("created_at",)),
    ("signals", ("created_at", "closed_at")),
    ("model_evaluations", ("evaluated_at",)),
    ("portfolios", ("created_at",)),
    ("positions", ("opened_at", "closed_at")),
    ("orders", ("created_at",)),
    ("trades", ("executed_at",)),
)


def test_history_spans_the_year_before_the_anchor(pg_admin_url: str) -> None:
    _seed(pg_admin_url)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for table, columns in TIMESTAMPS:
            for column in columns:
                row = conn.execute(f"SELECT min({column}), max({column}) FROM {table}".encode())
                low, high = row.fetchone() or (None, None)
                assert isinstance(low, datetime) and isinstance(high, datetime), (table, column)
                assert ANCHOR - timedelta(days=365) <= low <= high <= ANCHOR, (table, column)


# (table, xid column, condition of the rows in a final state)
FINAL_XIDS = (
    ("users", "churned_xid", "status = 'churned'"),
    ("payments", "final_xid", "status IN ('succeeded', 'failed')"),
    ("signals", "closed_xid", "status = 'closed'"),
    ("orders", "final_xid", "status IN ('filled', 'rejected', 'canceled', 'expired')"),
)


def test_xid_columns_set_exactly_for_final_rows(pg_admin_url: str) -> None:
    _seed(pg_admin_url)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        created = conn.execute("SELECT DISTINCT created_xid FROM users").fetchall()
        assert len(created) == 1, "one transaction loads everything"
        for table, column, final in FINAL_XIDS:
            row = conn.execute(
                f"SELECT count(*) FILTER (WHERE ({column} IS NOT NULL) <> ({final})),"
                f" count(DISTINCT {column}), min({column}::text) FROM {table}".encode()
            ).fetchone()
            assert row == (0, 1, str(created[0][0])), table


def test_schema_and_sequences_are_intact_after_seeding(pg_admin_url: str) -> None:
    query = (
        "SELECT array_agg(d ORDER BY d) FROM ("
        " SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint"
        " WHERE conrelid = ANY(%(t)s::regclass[])"
        " UNION ALL SELECT indexdef FROM pg_indexes WHERE tablename = ANY(%(t)s::text[])) AS x"
    )
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        before = conn.execute(query, {"t": list(TABLES)}).fetchone()
        seed_postgres(conn, PLAN)
        after = conn.execute(query, {"t": list(TABLES)}).fetchone()
        # Sequences continue after the explicit ids.
        row = conn.execute(
            "INSERT INTO users (email, tier) VALUES ('new@example.com', 'free') RETURNING id"
        ).fetchone()
    assert before == after
    assert row == (PLAN.users + 1,)


def test_refuses_a_database_that_has_data(pg_admin_url: str) -> None:
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, tier) VALUES ('first@example.com', 'pro')")
        with pytest.raises(ValueError, match="table users is not empty"):
            seed_postgres(conn, PLAN)
    assert _scalar(pg_admin_url, "SELECT count(*) FROM users") == 1
    assert _scalar(pg_admin_url, "SELECT count(*) FROM payments") == 0


def test_refuses_to_seed_twice(pg_admin_url: str) -> None:
    before = _seed(pg_admin_url)
    with pytest.raises(ValueError, match="not empty"):
        _seed(pg_admin_url)
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        for table, count in before.items():
            assert conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone() == (count,)


def _ids(url: str, sql: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [int(str(row[0])) for row in conn.execute(sql.encode())]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the emptied test Redis that returns strings."""
    connection = redis.Redis.from_url(redis_url, decode_responses=True)
    yield connection
    connection.close()


def test_redis_keys_follow_the_conventions(pg_admin_url: str, client: redis.Redis) -> None:
    client.rpush("orders:queue:high", "stale")  # re-running replaces, never appends
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        seed_postgres(conn, PLAN)
        counts = seed_redis(client, conn, PLAN)
        assert seed_redis(client, conn, PLAN) == counts
    for provider in PROVIDERS:
        assert client.type(f"md:last_tick:{provider}") == "string"
        tick = str(client.get(f"md:last_tick:{provider}"))
        assert re.fullmatch(r"\d+\.\d+", tick) and 0 < ANCHOR.timestamp() - float(tick) < 10
        assert client.type(f"md:ticks:{provider}") == "hash"
        prices = client.hgetall(f"md:ticks:{provider}")
        assert prices
        for value in prices.values():
            price, stamp = value.split("|")
            assert float(price) > 0 and float(stamp) <= float(tick)
    queued: list[int] = []
    for priority in PRIORITIES:
        assert client.type(f"orders:queue:{priority}") == "list"
        ids = [int(i) for i in client.lrange(f"orders:queue:{priority}", 0, -1)]
        assert ids, priority
        queued += ids
    working = "SELECT id FROM orders WHERE status IN ('open', 'pending') ORDER BY id"
    assert sorted(queued) == _ids(pg_admin_url, working)
    for strategy in STRATEGIES:
        key = f"signals:active:{strategy}"
        assert client.type(key) == "set"
        active = f"SELECT id FROM signals WHERE status = 'active' AND strategy = '{strategy}'"
        assert sorted(int(i) for i in client.smembers(key)) == sorted(_ids(pg_admin_url, active))
    assert counts == {
        "md:last_tick": len(PROVIDERS),
        "md:ticks": sum(client.hlen(f"md:ticks:{p}") for p in PROVIDERS),
        "orders:queue": len(queued),
        "signals:active": sum(client.scard(f"signals:active:{s}") for s in STRATEGIES),
    }


def test_cli_seeds_and_prints_json(
    pg_admin_url: str, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["seed", "--database-url", pg_admin_url, "--redis-url", redis_url, "--payments", "1e4"]
    argv += ["--seed", "42", "--anchor", "2025-06-01T12:00:00Z", "--json"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["postgres"] == _seed_counts_of(pg_admin_url)
    assert result["redis"]["md:last_tick"] == len(PROVIDERS)
    assert "[+] seeding payments (10000 rows)..." in err.splitlines()


def _seed_counts_of(url: str) -> dict[str, object]:
    return {table: _scalar(url, f"SELECT count(*) FROM {table}") for table in TABLES}


def test_cli_reports_errors_without_traceback(
    pg_admin_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url_file = tmp_path / "database-url"
    url_file.write_text(pg_admin_url + "\n")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL_FILE", str(url_file))
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.strip() == "up to date"
    assert main(["seed", "--payments", "10000", "--anchor", "2025-06-01T12:00:00+00:00"]) == 0
    assert "users" in capsys.readouterr().out
    assert main(["seed", "--payments", "10000"]) == 1
    err = capsys.readouterr().err
    assert "error: table users is not empty" in err and "Traceback" not in err


def test_cli_usage_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "DATABASE_URL_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["seed", "--payments", "100"]) == 2  # no database
    assert main(["seed", "--database-url", "postgresql://x/y"]) == 2  # no --payments
    assert main(["seed", "--database-url", "postgresql://x/y", "--payments", "many"]) == 2
    assert (
        main(["seed", "--database-url", "postgresql://x/y", "--payments", "9", "--anchor", "soon"])
        == 2
    )
    assert main([]) == 2
    assert "Traceback" not in capsys.readouterr().err
