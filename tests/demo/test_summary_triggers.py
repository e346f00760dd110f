"""The gauge summaries (006_gauge_summaries.sql) are exact after a migration, a seed and the
platform's own writes, and only their trigger can write them."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from importlib import resources

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from finance_demo.access import POSTGRES_PLATFORM_ROLE, set_postgres_platform_password
from finance_demo.migrate import migrate, migration_names
from finance_demo.seed import SeedPlan, seed_postgres
from support.datastores import ANCHOR, Database
from support.servers import PostgresServer
from support.summaries import SUMMARY_TABLES, assert_summaries_exact

MIGRATION = "006_gauge_summaries.sql"
PLAN = SeedPlan(payments=5_000, seed=11, anchor=ANCHOR)
# Later writes of every kind the summaries follow, on top of the seeded rows.
WRITES = (
    "UPDATE users SET last_active_at = now() WHERE id % 7 = 0",
    "UPDATE users SET status = 'churned', churned_at = now() WHERE id % 11 = 0",
    "UPDATE subscriptions SET status = 'canceled' WHERE id % 5 = 0",
    "UPDATE subscriptions SET status = 'active' WHERE status = 'trialing'",
    "UPDATE subscriptions SET amount = amount * 2, billing_period = 'yearly' WHERE id % 3 = 0",
    "UPDATE positions SET status = 'closed' WHERE id % 4 = 0",
    "UPDATE portfolios SET account_type = 'joint' WHERE id % 6 = 0",
    "DELETE FROM portfolio_daily_snapshots WHERE portfolio_id % 9 = 0",
)


@pytest.fixture
def bare_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty database on the session's server, without any migration, dropped afterwards."""
    name = f"bare_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0'.encode())
    yield make_conninfo(postgres_server.url(), dbname=name)
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def _apply_before(conn: psycopg.Connection[tuple[object, ...]], last: str) -> None:
    """The schema as it was before `last`: the earlier migrations, recorded as applied."""
    folder = resources.files("finance_demo") / "migrations"
    for name in migration_names():
        if name >= last:
            break
        conn.execute((folder / name).read_text(encoding="utf-8").encode())
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (name,))


def test_migration_backfills_the_summaries_of_an_existing_database(bare_url: str) -> None:
    with psycopg.connect(bare_url, autocommit=True) as conn:
        _apply_before(conn, MIGRATION)
        seed_postgres(conn, PLAN)
        for statement in WRITES:
            conn.execute(statement.encode())
        assert migrate(conn)[0] == MIGRATION
        # Something to backfill: every summary has rows.
        for table in SUMMARY_TABLES:
            row = conn.execute(f"SELECT count(*) FROM {table}".encode()).fetchone()
            assert row is not None and int(str(row[0])) > 0, table
    assert_summaries_exact(bare_url)


def test_seed_leaves_the_summaries_exact_and_the_triggers_enabled(database: Database) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        seed_postgres(conn, PLAN)
        disabled = conn.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger"
            " WHERE tgname LIKE 'gauge_summary_%' AND tgenabled = 'D'"
        ).fetchall()
        enabled = conn.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'gauge_summary_%'"
        ).fetchone()
    assert disabled == []
    assert enabled == (17,)  # 4 tables x insert, update, delete, truncate; portfolios' update
    assert_summaries_exact(database.admin_url)
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        for statement in WRITES:
            conn.execute(statement.encode())
    assert_summaries_exact(database.admin_url)


def test_platform_writes_keep_the_summaries_but_cannot_write_them(database: Database) -> None:
    password = secrets.token_urlsafe(16)
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        set_postgres_platform_password(conn, password)
        seed_postgres(conn, PLAN)
    platform_url = make_conninfo(database.admin_url, user=POSTGRES_PLATFORM_ROLE, password=password)
    with psycopg.connect(platform_url, autocommit=True) as conn:
        # What its handlers do: logins, churn and cancel, new subscriptions, closed positions.
        for statement in WRITES[:4]:
            conn.execute(statement.encode())
        conn.execute(
            "INSERT INTO subscriptions (user_id, plan, billing_period, amount, currency, status)"
            " VALUES (1, 'pro', 'monthly', 49.99, 'EUR', 'active')"
        )
        conn.execute("UPDATE positions SET status = 'closed' WHERE id % 4 = 0")
        for table in SUMMARY_TABLES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"DELETE FROM {table}".encode())
    assert_summaries_exact(database.admin_url)


def test_a_repeat_login_on_the_same_day_writes_no_summary_row(database: Database) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (email, tier, last_active_at)"
            " VALUES ('a@example.com', 'pro', now() - interval '3 days')"
        )
        conn.execute("UPDATE users SET last_active_at = now()")  # the day's first login
        versions = "SELECT day, xmin::text, users FROM user_activity_days ORDER BY day"
        first = conn.execute(versions).fetchall()
        conn.execute("UPDATE users SET last_active_at = now()")  # again: nothing moves
        again = conn.execute(versions).fetchall()
    assert [users for _, _, users in first] == [0, 1]
    assert again == first  # same row versions: no write, no lock
