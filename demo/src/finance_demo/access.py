"""Least-privilege datastore users for the exporters: a read-only Postgres role and Redis ACL."""

from __future__ import annotations

import psycopg
import redis
from psycopg import sql

POSTGRES_EXPORTER_ROLE = "finance_exporter"
REDIS_EXPORTER_USER = "finance_exporter"

# Read-only: only the key families the exporters read, only the commands they send.
REDIS_EXPORTER_KEYS = ("md:last_tick:*", "orders:queue:*", "signals:active:*")
REDIS_EXPORTER_COMMANDS = ("-@all", "+ping", "+mget", "+llen", "+scard")


def set_postgres_exporter_password(
    conn: psycopg.Connection[tuple[object, ...]], password: str
) -> None:
    """Give the exporter role (created by the migrations) its password from a secret."""
    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(POSTGRES_EXPORTER_ROLE), sql.Literal(password)
        )
    )


def create_redis_exporter_user(client: redis.Redis, password: str) -> None:
    """Create or reset the exporter's Redis ACL user; re-running it is safe."""
    client.acl_setuser(
        REDIS_EXPORTER_USER,
        enabled=True,
        reset=True,
        reset_channels=True,
        passwords=[f"+{password}"],
        keys=list(REDIS_EXPORTER_KEYS),
        commands=list(REDIS_EXPORTER_COMMANDS),
    )
