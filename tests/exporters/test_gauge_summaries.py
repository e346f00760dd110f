"""The live-state gauges read summaries kept exact by the reference schema, never the live tables.

(a) after random concurrent writes every gauge equals its full-scan definition; (b) the gauges'
plans touch only the summaries, and the rows they read do not grow with the tables.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from finance_demo.catalog import TABLES
from finance_demo.seed import SeedPlan, seed_postgres
from finance_exporter.domains import DOMAINS
from finance_exporter.spec import QuerySpec
from support.datastores import Database
from support.rows import rows_read
from support.summaries import SUMMARY_TABLES, assert_summaries_exact

Row = tuple[object, ...]
Conn = psycopg.Connection[Row]

# The live-state gauges of the reference schema (the signals' model_accuracy is a skip scan of
# model_evaluations and has its own test below; Redis gauges are O(1) per key).
SUMMARY_GAUGES = (
    "mrr",
    "active_subscriptions",
    "active_users",
    "aum",
    "daily_return",
    "var95",
    "open_positions",
)
LIVE_TABLES = TABLES
_LATEST = "s.day = (SELECT max(day) FROM portfolio_daily_snapshots)"
# Each gauge's definition as a full scan of the live tables (the queries before the summaries).
FULL_SCAN = {
    "mrr": "SELECT currency, plan,"
    " sum(CASE billing_period WHEN 'yearly' THEN amount / 12 ELSE amount END)"
    " FROM subscriptions WHERE status IN ('active', 'past_due') GROUP BY 1, 2",
    "active_subscriptions": "SELECT plan, count(*) FROM subscriptions"
    " WHERE status IN ('active', 'past_due') GROUP BY 1",
    # Whole UTC days: since 00:00 UTC 30 days ago (docs/metrics.md).
    "active_users": "SELECT tier, count(*) FROM users WHERE status = 'active'"
    " AND last_active_at >= date_trunc('day', now(), 'UTC') - 30 * interval '24 hours'"
    " GROUP BY 1",
    "aum": "SELECT p.account_type, sum(s.value_usd) FROM portfolio_daily_snapshots s"
    f" JOIN portfolios p ON p.id = s.portfolio_id WHERE {_LATEST} GROUP BY 1",
    "daily_return": "SELECT p.account_type,"
    " sum(s.value_usd * s.daily_return::numeric) / nullif(sum(s.value_usd), 0)"
    " FROM portfolio_daily_snapshots s JOIN portfolios p ON p.id = s.portfolio_id"
    f" WHERE {_LATEST} GROUP BY 1",
    "var95": "SELECT p.account_type, sum(s.var95_usd) FROM portfolio_daily_snapshots s"
    f" JOIN portfolios p ON p.id = s.portfolio_id WHERE {_LATEST} GROUP BY 1",
    "open_positions": "SELECT p.account_type, count(*) FROM positions x"
    " JOIN portfolios p ON p.id = x.portfolio_id WHERE x.status = 'open' GROUP BY 1",
}
TIERS = ("free", "basic", "pro", "enterprise")
PLANS = ("basic", "pro", "enterprise")
SUB_STATUSES = ("trialing", "active", "past_due", "canceled")
ACCOUNT_TYPES = ("individual", "joint", "retirement", "institutional")


def spec(name: str) -> QuerySpec:
    return next(q for qs in DOMAINS.values() for q in qs if q.name == name)


def _gauges(conn: Conn) -> dict[str, tuple[dict[tuple[object, ...], object], ...]]:
    """Each gauge as the exporter reads it and as its full scan, in one snapshot."""
    result = {}
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # A session time zone far from UTC: the day boundaries must not depend on it.
        conn.execute("SET LOCAL TimeZone = 'Pacific/Kiritimati'")
        for name in SUMMARY_GAUGES:
            pair = []
            for sql in (spec(name).sql, FULL_SCAN[name]):
                rows = conn.execute(sql.encode()).fetchall()
                pair.append({tuple(row[:-1]): Decimal(str(row[-1])) for row in rows})
            result[name] = (pair[0], pair[1])
    return result


def _one(conn: Conn, sql: str, params: tuple[object, ...] = ()) -> object:
    row = conn.execute(sql.encode(), params).fetchone()
    return row[0] if row else None


def _pick(conn: Conn, table: str, rng: random.Random, where: str = "true") -> int | None:
    high = _one(conn, f"SELECT max(id) FROM {table}")
    if not isinstance(high, int):
        return None
    found = _one(
        conn,
        f"SELECT id FROM {table} WHERE id >= %s AND {where} ORDER BY id LIMIT 1",
        (rng.randint(1, high),),
    )
    return found if isinstance(found, int) else None


def _ago(rng: random.Random) -> str:
    """A last-activity age, often right around the 30-day boundary."""
    days = rng.choice((0, 1, 5, 29, 30, 30, 31, 45, 400)) + rng.random()
    return f"{days * 86400:.0f} seconds"


def _action(conn: Conn, rng: random.Random) -> None:
    kind = rng.randrange(14)
    if kind == 0:
        conn.execute(
            "INSERT INTO users (email, tier, last_active_at)"
            " SELECT gen_random_uuid()::text, %s, now() - %s::interval FROM generate_series(1, %s)",
            (rng.choice(TIERS), _ago(rng), rng.randint(1, 3)),
        )
    elif kind == 1 and (user := _pick(conn, "users", rng)):
        conn.execute("UPDATE users SET last_active_at = now() WHERE id = %s", (user,))  # a login
    elif kind == 2 and (user := _pick(conn, "users", rng)):
        # An activity time moved anywhere, backwards too.
        conn.execute(
            "UPDATE users SET last_active_at = now() - %s::interval WHERE id = %s",
            (_ago(rng), user),
        )
    elif kind == 3 and (user := _pick(conn, "users", rng, "status = 'active'")):
        conn.execute(
            "UPDATE users SET status = 'churned', churned_at = now() WHERE id = %s", (user,)
        )
        conn.execute(
            "UPDATE subscriptions SET status = 'canceled', canceled_at = now()"
            " WHERE user_id = %s AND status <> 'canceled'",
            (user,),
        )
    elif kind == 4 and (user := _pick(conn, "users", rng)):
        conn.execute(
            "UPDATE users SET tier = %s, status = %s WHERE id = %s",
            (rng.choice(TIERS), rng.choice(("active", "churned")), user),
        )
    elif kind == 5 and (user := _pick(conn, "users", rng)):
        conn.execute(
            "INSERT INTO subscriptions (user_id, plan, billing_period, amount, currency, status)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                user,
                rng.choice(PLANS),
                rng.choice(("monthly", "yearly")),
                Decimal(rng.randint(0, 99999)) / 100,
                rng.choice(("USD", "EUR", "GBP")),
                rng.choice(SUB_STATUSES),
            ),
        )
    elif kind == 6 and (sub := _pick(conn, "subscriptions", rng)):
        column, value = rng.choice(
            (
                ("status", rng.choice(SUB_STATUSES)),
                ("plan", rng.choice(PLANS)),
                ("currency", rng.choice(("USD", "EUR", "GBP"))),
                ("amount", Decimal(rng.randint(0, 99999)) / 100),
                ("billing_period", rng.choice(("monthly", "yearly"))),
            )
        )
        conn.execute(f"UPDATE subscriptions SET {column} = %s WHERE id = %s".encode(), (value, sub))
    elif kind == 7:
        # A multi-row statement: one upsert per summary for all its rows.
        conn.execute(
            "UPDATE subscriptions SET amount = amount + 0.01 WHERE id %% 5 = %s",
            (rng.randrange(5),),
        )
    elif kind == 8 and (sub := _pick(conn, "subscriptions", rng)):
        conn.execute("DELETE FROM subscriptions WHERE id = %s", (sub,))
    elif kind == 9 and (portfolio := _pick(conn, "portfolios", rng)):
        conn.execute(
            "INSERT INTO positions (portfolio_id, symbol, quantity, avg_price, status)"
            " SELECT %s, 'SYM', 1, 1, %s FROM generate_series(1, %s)",
            (portfolio, rng.choice(("open", "open", "closed")), rng.randint(1, 3)),
        )
    elif kind == 10 and (position := _pick(conn, "positions", rng)):
        if rng.random() < 0.5:
            conn.execute("DELETE FROM positions WHERE id = %s", (position,))
        else:
            conn.execute(
                "UPDATE positions SET status = %s WHERE id = %s",
                (rng.choice(("open", "closed")), position),
            )
    elif kind == 11:
        # One of the last three days closed for every portfolio, or one snapshot rewritten.
        everyone = rng.random() < 0.3
        conn.execute(
            "INSERT INTO portfolio_daily_snapshots"
            " SELECT id, current_date - %s, %s, %s, %s FROM portfolios"
            " WHERE %s OR id = %s"
            " ON CONFLICT (portfolio_id, day) DO UPDATE SET value_usd = excluded.value_usd,"
            " daily_return = excluded.daily_return",
            (
                rng.randrange(3),
                Decimal(rng.randint(0, 10**7)) / 100,
                rng.uniform(-0.2, 0.2),
                Decimal(rng.randint(0, 10**5)) / 100,
                everyone,
                rng.randint(1, 40),
            ),
        )
    elif kind == 12:
        conn.execute(
            "DELETE FROM portfolio_daily_snapshots WHERE ctid = (SELECT ctid FROM"
            " portfolio_daily_snapshots ORDER BY random() LIMIT 1)"
        )
    elif kind == 13 and (portfolio := _pick(conn, "portfolios", rng)):
        conn.execute(
            "UPDATE portfolios SET account_type = %s WHERE id = %s",
            (rng.choice(ACCOUNT_TYPES), portfolio),
        )


def _writer(url: str, seed: int, transactions: int, errors: list[BaseException]) -> None:
    rng = random.Random(seed)
    try:
        with psycopg.connect(url) as conn:
            for _ in range(transactions):
                try:
                    for _ in range(rng.randint(1, 4)):
                        _action(conn, rng)
                except psycopg.errors.DeadlockDetected:
                    conn.rollback()  # the other transaction goes on; this one never happened
                    continue
                if rng.random() < 0.1:
                    conn.rollback()  # aborted work must leave the summaries as they were
                else:
                    conn.commit()
    except BaseException as err:
        errors.append(err)


def _base_rows(url: str) -> None:
    """Users, live subscriptions (every currency and plan ten times) and portfolios to work on.

    The writers add and delete subscriptions equally often, so without a base population the
    live ones random-walk near zero: about one run in ten ended with none, and an empty MRR
    failed the concurrent-writes test's variety check although every summary was exact.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, tier, last_active_at) SELECT 'u' || g, "
            "(ARRAY['free', 'basic', 'pro', 'enterprise'])[1 + g % 4], now() - g * interval '7 h'"
            " FROM generate_series(1, 200) AS g"
        )
        conn.execute(
            "INSERT INTO subscriptions (user_id, plan, billing_period, amount, currency, status)"
            " SELECT g, (ARRAY['basic', 'pro', 'enterprise'])[1 + g % 3],"
            " (ARRAY['monthly', 'yearly'])[1 + g % 2], g * 1.25,"
            " (ARRAY['USD', 'EUR', 'GBP'])[1 + g / 3 % 3],"
            " (ARRAY['active', 'past_due'])[1 + g / 9 % 2]"
            " FROM generate_series(1, 90) AS g"
        )
        conn.execute(
            "INSERT INTO portfolios (user_id, account_type) SELECT g,"
            " (ARRAY['individual', 'joint', 'retirement', 'institutional'])[1 + g % 4]"
            " FROM generate_series(1, 40) AS g"
        )


def test_gauges_equal_full_scans_after_random_concurrent_writes(database: Database) -> None:
    _base_rows(database.admin_url)
    errors: list[BaseException] = []
    writers = [
        threading.Thread(target=_writer, args=(database.admin_url, seed, 150, errors))
        for seed in range(4)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert errors == []
    with psycopg.connect(database.exporter_url) as conn:
        gauges = _gauges(conn)
    for name, (read, scanned) in gauges.items():
        assert read == scanned, name
    # The writers produced variety: every gauge has values, most several label sets.
    assert all(scanned for _, scanned in gauges.values()), gauges
    assert sum(len(scanned) for _, scanned in gauges.values()) >= 20, gauges
    assert_summaries_exact(database.admin_url)


def test_truncate_empties_the_summaries(database: Database) -> None:
    _base_rows(database.admin_url)
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        rng = random.Random(3)
        for _ in range(60):
            _action(conn, rng)
        conn.execute(
            "TRUNCATE users, subscriptions, portfolios, positions,"
            " portfolio_daily_snapshots, payments, refunds, orders, trades"
        )
        for table in SUMMARY_TABLES:
            assert _one(conn, f"SELECT count(*) FROM {table}") == 0, table


def test_account_type_change_waits_for_a_position_being_added(database: Database) -> None:
    _base_rows(database.admin_url)
    adding = psycopg.connect(database.admin_url)
    try:
        # Added under account type joint (portfolio 1 is joint), not yet committed.
        adding.execute(
            "INSERT INTO positions (portfolio_id, symbol, quantity, avg_price)"
            " VALUES (1, 'AAPL', 1, 1)"
        )
        moved = threading.Thread(
            target=lambda: (
                psycopg.connect(database.admin_url, autocommit=True)
                .execute("UPDATE portfolios SET account_type = 'retirement' WHERE id = 1")
                .connection.close()
            )
        )
        moved.start()
        moved.join(timeout=0.5)
        assert moved.is_alive()  # waits for the position's transaction
        adding.commit()
        moved.join(timeout=10)
        assert not moved.is_alive()
    finally:
        adding.close()
    with psycopg.connect(database.admin_url) as conn:
        assert conn.execute(
            "SELECT account_type, positions FROM open_position_totals WHERE positions > 0"
        ).fetchall() == [("retirement", 1)]
    assert_summaries_exact(database.admin_url)


def _plan_relations(node: dict[str, object]) -> Iterator[tuple[str, str]]:
    if "Relation Name" in node:
        yield str(node["Relation Name"]), str(node["Node Type"])
    for child in node.get("Plans", []):  # type: ignore[union-attr]
        yield from _plan_relations(child)


def _explain(conn: Conn, sql: str) -> list[tuple[str, str]]:
    row = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}".encode()).fetchone()
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(str(row[0]))
    return list(_plan_relations(plan[0]["Plan"]))


@pytest.fixture(scope="module")
def seeded(module_database: Database) -> Database:
    with psycopg.connect(module_database.admin_url) as conn:
        seed_postgres(conn, SeedPlan(payments=5_000, seed=3, anchor=datetime.now(UTC)))
        conn.commit()
    return module_database


@pytest.mark.parametrize("name", SUMMARY_GAUGES)
def test_gauge_plan_reads_only_the_summaries(seeded: Database, name: str) -> None:
    with psycopg.connect(seeded.exporter_url) as conn:
        relations = _explain(conn, spec(name).sql)
    assert relations
    assert {relation for relation, _ in relations} <= set(SUMMARY_TABLES), relations


def test_model_accuracy_probes_the_index_instead_of_reading_every_evaluation(
    database: Database,
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        # Years of nightly evaluations: what DISTINCT ON would read on every refresh.
        conn.execute(
            "INSERT INTO model_evaluations (model, accuracy, evaluated_at)"
            " SELECT 'model_' || m, 0.5, now() - d * interval '1 day'"
            " FROM generate_series(1, 4) AS m, generate_series(1, 1000) AS d"
        )
        conn.execute("ANALYZE model_evaluations")
    with psycopg.connect(database.exporter_url) as conn:
        relations = _explain(conn, spec("model_accuracy").sql)
        rows = conn.execute(spec("model_accuracy").sql.encode()).fetchall()
    assert sorted(rows) == [(f"model_{m}", 0.5) for m in range(1, 5)]
    assert {relation for relation, _ in relations} == {"model_evaluations"}
    assert {node for _, node in relations} <= {"Index Scan", "Index Only Scan"}, relations


def _refresh_reads(database: Database) -> dict[str, int]:
    """Rows read, per table, by one run of every summary gauge as the exporter runs them."""
    tables = (*LIVE_TABLES, *SUMMARY_TABLES)
    before = rows_read(database.admin_url, tables)
    with psycopg.connect(database.exporter_url, autocommit=True) as conn:
        for name in SUMMARY_GAUGES:
            conn.execute(spec(name).sql.encode()).fetchall()
        # Flush this backend's table statistics now rather than at some later idle moment.
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")
    after = rows_read(database.admin_url, tables)
    return {table: after.get(table, 0) - before.get(table, 0) for table in tables}


def test_rows_read_per_refresh_do_not_grow_when_the_tables_grow_tenfold(
    database: Database, seeded: Database
) -> None:
    with psycopg.connect(database.admin_url) as conn:
        seed_postgres(conn, SeedPlan(payments=50_000, seed=3, anchor=datetime.now(UTC)))
        conn.commit()
    small, large = _refresh_reads(seeded), _refresh_reads(database)
    assert {t: small[t] for t in LIVE_TABLES} == dict.fromkeys(LIVE_TABLES, 0)
    assert {t: large[t] for t in LIVE_TABLES} == dict.fromkeys(LIVE_TABLES, 0)
    # The summaries' rows are bounded by label sets and days of history, not by the tables' rows.
    assert 0 < sum(large.values()) <= 2_000, large
    assert sum(large.values()) <= sum(small.values()) * 1.5, (small, large)
