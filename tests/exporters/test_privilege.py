"""The exporters' datastore users can read what they need and cannot write anything."""

from __future__ import annotations

import psycopg
import pytest
import redis

from support.datastores import Database, RedisDb

WRITES = (
    "INSERT INTO users (email, tier) VALUES ('intruder@example.com', 'pro')",
    "UPDATE payments SET amount = 0",
    "DELETE FROM orders",
    "CREATE TABLE intruder (id int)",
    "TRUNCATE signals",
    "UPDATE subscription_live_totals SET mrr_amount = 0",
    "DELETE FROM user_activity_days",
)
# What the exporter role may read: the reference tables and the gauge summaries, nothing else.
READABLE = (
    "model_evaluations",
    "open_position_totals",
    "orders",
    "payments",
    "portfolio_daily_snapshots",
    "portfolio_day_totals",
    "portfolios",
    "positions",
    "refunds",
    "signals",
    "subscription_live_totals",
    "subscriptions",
    "trades",
    "user_activity_days",
    "users",
)


@pytest.mark.parametrize("statement", WRITES)
def test_exporter_role_cannot_write(database: Database, statement: str) -> None:
    with psycopg.connect(database.exporter_url) as conn:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(statement)


@pytest.mark.parametrize("statement", WRITES)
def test_exporter_role_cannot_write_even_after_leaving_read_only_mode(
    database: Database, statement: str
) -> None:
    # Read-only is the default, not the guard: without grants a write is still refused.
    with psycopg.connect(database.exporter_url) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.commit()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_exporter_role_can_read_the_reference_tables(database: Database) -> None:
    with psycopg.connect(database.exporter_url) as conn:
        row = conn.execute("SELECT count(*) FROM payments").fetchone()
        assert row == (0,)


def test_exporter_role_reads_the_gauge_summaries_and_holds_no_other_grant(
    database: Database,
) -> None:
    with psycopg.connect(database.exporter_url) as conn:
        row = conn.execute("SELECT count(*) FROM user_activity_days").fetchone()
        assert row == (0,)
        grants = conn.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = current_user ORDER BY 1, 2"
        ).fetchall()
    assert grants == [(table, "SELECT") for table in READABLE]


def test_exporter_redis_user_cannot_write_or_read_other_keys(redis_db: RedisDb) -> None:
    admin = redis.Redis.from_url(redis_db.admin_url, decode_responses=True)
    admin.set("session:secret", "x")
    admin.rpush("orders:queue:high", "1", "2")
    client = redis.Redis.from_url(redis_db.exporter_url, decode_responses=True)
    assert client.llen("orders:queue:high") == 2
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("orders:queue:high", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.rpush("orders:queue:high", "3")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.mget(["session:secret"])
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
    assert admin.lrange("orders:queue:high", 0, -1) == ["1", "2"]
