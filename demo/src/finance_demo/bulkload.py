"""Bulk-load helpers: emptiness check, deferred indexes and foreign keys, sequences, statistics.

Following the PostgreSQL manual's "Populating a Database": foreign keys and secondary indexes are
dropped before the load and re-created after it, inside the loading transaction, so a failure
rolls the schema back too. Re-adding a foreign key validates every row in one join, much cheaper
than one trigger call per inserted row.
"""

from __future__ import annotations

import psycopg

Row = tuple[object, ...]


def require_empty(conn: psycopg.Connection[Row], tables: tuple[str, ...]) -> None:
    """Raise ValueError naming the first of the tables that already holds rows."""
    probe = " UNION ALL ".join(
        f"(SELECT '{table}' WHERE EXISTS (SELECT 1 FROM {table}))" for table in tables
    )
    found = [str(row[0]) for row in conn.execute(probe.encode()).fetchall()]
    if found:
        others = f" (also {', '.join(found[1:])})" if found[1:] else ""
        raise ValueError(
            f"table {found[0]} is not empty{others}; seed only into a freshly migrated database"
        )


def defer_constraints(conn: psycopg.Connection[Row], tables: tuple[str, ...]) -> list[str]:
    """Drop the tables' foreign keys and secondary indexes; return the DDL that restores them."""
    foreign_keys = conn.execute(
        "SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])"
        " ORDER BY conrelid::regclass::text, conname",
        (list(tables),),
    ).fetchall()
    # Indexes backing a primary key or unique constraint stay: the load relies on them.
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index AS i"
        " WHERE i.indrelid = ANY(%s::regclass[]) AND NOT EXISTS ("
        "  SELECT 1 FROM pg_constraint AS c"
        "  WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))"
        " ORDER BY 1",
        (list(tables),),
    ).fetchall()
    restore: list[str] = []
    for table, name, definition in foreign_keys:
        conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}".encode())
        restore.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for index, definition in indexes:
        conn.execute(f"DROP INDEX {index}".encode())
        restore.insert(0, str(definition))
    # Indexes first, so the foreign keys' validation and later queries can use them.
    return restore


def advance_sequences(conn: psycopg.Connection[Row], tables: tuple[str, ...]) -> None:
    """Point each id sequence past the explicit ids, so later default inserts do not collide."""
    for table in tables:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
            f" coalesce(max(id), 0) + 1, false) FROM {table}".encode()
        )
