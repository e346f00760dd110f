"""Rows the exporter tests add to the reference schema, and the rows Postgres says were read."""

from __future__ import annotations

import psycopg

Conn = psycopg.Connection[tuple[object, ...]]


def add_user(conn: Conn) -> int:
    """A new pro user; returns its id."""
    row = conn.execute(
        "INSERT INTO users (email, tier) VALUES (gen_random_uuid()::text, 'pro') RETURNING id"
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def add_payments(conn: Conn, count: int, status: str = "succeeded") -> None:
    """`count` payments of 1.00 EUR by card from one new user, each in its own transaction
    when `conn` is in autocommit."""
    user = add_user(conn)
    for _ in range(count):
        conn.execute(
            "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
            "VALUES (%s, 1.00, 'EUR', 'pro', 'card', 'web', %s)",
            (user, status),
        )


def rows_read(url: str, tables: tuple[str, ...]) -> dict[str, int]:
    """Rows read so far from each table, by sequential scans and index fetches."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return {
            str(name): int(str(n))
            for name, n in conn.execute(
                "SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)"
                " FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                (list(tables),),
            ).fetchall()
        }
