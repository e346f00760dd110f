"""Least-privilege datastore users: the exporters' read-only ones and the demo platform's."""

from __future__ import annotations

import psycopg
import redis
from psycopg import sql

POSTGRES_EXPORTER_ROLE = "finance_exporter"
REDIS_EXPORTER_USER = "finance_exporter"

# Read-only: only the key families the exporters read, only the commands they send.
REDIS_EXPORTER_KEYS = ("md:last_tick:*", "orders:queue:*", "signals:active:*")
REDIS_EXPORTER_COMMANDS = ("-@all", "+ping", "+mget", "+llen", "+scard")

# The demo platform (migration 003 creates its Postgres role): only the key families it writes,
# only the commands its handlers and the market-data feed send.
POSTGRES_PLATFORM_ROLE = "finance_platform"
REDIS_PLATFORM_USER = "finance_platform"
REDIS_PLATFORM_KEYS = ("md:last_tick:*", "md:ticks:*", "orders:queue:*", "signals:active:*")
REDIS_PLATFORM_COMMANDS = (
    "-@all",
    "+ping",
    "+set",
    "+hset",
    "+hget",
    "+rpush",
    "+lpop",
    "+sadd",
    "+spop",
    "+scard",
    "+multi",
    "+exec",
    "+discard",
)


def set_postgres_exporter_password(
    conn: psycopg.Connection[tuple[object, ...]], password: str
) -> None:
    """Give the exporter role (created by the migrations) its password from a secret."""
    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(POSTGRES_EXPORTER_ROLE), sql.Literal(password)
        )
    )


def set_postgres_platform_password(
    conn: psycopg.Connection[tuple[object, ...]], password: str
) -> None:
    """Give the platform role (created by the migrations) its password from a secret."""
    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(POSTGRES_PLATFORM_ROLE), sql.Literal(password)
        )
    )


def redis_acl_rules(keys: tuple[str, ...], commands: tuple[str, ...]) -> str:
    """The ACL file's rules for a user limited to `keys` and `commands`."""
    patterns = " ".join(f"~{key}" for key in keys)
    return f"resetchannels {patterns} {' '.join(commands)} +hello +auth"


def create_redis_platform_user(client: redis.Redis, password: str) -> None:
    """Create or reset the platform's Redis ACL user; re-running it is safe."""
    client.acl_setuser(
        REDIS_PLATFORM_USER,
        enabled=True,
        reset=True,
        reset_channels=True,
        passwords=[f"+{password}"],
        keys=list(REDIS_PLATFORM_KEYS),
        commands=[*REDIS_PLATFORM_COMMANDS, "+hello", "+auth"],
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
