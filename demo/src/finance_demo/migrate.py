"""Apply the reference schema's SQL migrations in order, once each."""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

logger = logging.getLogger(__name__)


def migration_names() -> list[str]:
    """The migration files, in the order they apply."""
    folder = resources.files("finance_demo") / "migrations"
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Apply every migration not yet recorded in schema_migrations; return the ones applied.

    Each file runs in its own transaction together with its bookkeeping row, under an advisory
    lock so two concurrent runs cannot apply the same file twice.
    """
    folder = resources.files("finance_demo") / "migrations"
    applied: list[str] = []
    for name in migration_names():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('finance_demo.migrate'))")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (name,))
            if done.fetchone():
                continue
            conn.execute((folder / name).read_text(encoding="utf-8").encode())
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (name,))
            applied.append(name)
            logger.info("migration applied", extra={"migration": name})
    return applied
