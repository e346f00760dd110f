"""The reference schema keeps the counting contract: final means final, xids set once."""

from __future__ import annotations

import psycopg
import pytest

from support.datastores import Database


def _one(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> object:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_final_xid_is_set_once_by_the_transaction_that_makes_the_row_final(
    database: Database,
) -> None:
    with psycopg.connect(database.admin_url) as conn:
        conn.execute("INSERT INTO users (email, tier) VALUES ('a@example.com', 'pro')")
        conn.execute(
            "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
            "VALUES (1, 5, 'USD', 'pro', 'card', 'web', 'pending')"
        )
        conn.commit()
        assert _one(conn, "SELECT final_xid FROM payments") is None
        conn.execute("UPDATE payments SET status = 'succeeded'")
        xid = _one(conn, "SELECT pg_current_xact_id()::text")
        conn.commit()
        assert str(_one(conn, "SELECT final_xid::text FROM payments")) == str(xid)


@pytest.mark.parametrize(
    ("setup", "change"),
    [
        (
            "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
            "VALUES (1, 5, 'USD', 'pro', 'card', 'web', 'succeeded')",
            "UPDATE payments SET status = 'failed'",
        ),
        (
            "INSERT INTO portfolios (user_id, account_type) VALUES (1, 'joint');"
            "INSERT INTO orders (portfolio_id, broker, segment, order_type, side, symbol, "
            "quantity, status) VALUES (1, 'alpaca', 'equity', 'limit', 'buy', 'AAPL', 1, 'filled')",
            "UPDATE orders SET status = 'canceled'",
        ),
    ],
)
def test_a_final_status_cannot_change(database: Database, setup: str, change: str) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (email, tier) VALUES ('a@example.com', 'pro')")
        for statement in setup.split(";"):
            conn.execute(statement)
        with pytest.raises(psycopg.errors.CheckViolation, match="final status"):
            conn.execute(change)
