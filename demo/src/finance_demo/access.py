"""The demo's least-privilege Postgres roles: their names, and setting their passwords.

The migrations create finance_exporter and finance_platform; setup.py creates postgres_exporter.
The stack's secrets (stack/src/finance_stack/access.py) name the same roles in the URLs they
write, and the Redis users too; tests/demo/test_access.py checks that the names agree.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

POSTGRES_EXPORTER_ROLE = "finance_exporter"
POSTGRES_PLATFORM_ROLE = "finance_platform"
# The postgres-exporter service's role (DATA_SOURCE_USER in docker-compose.yml): pg_monitor only.
POSTGRES_EXPORTER_SERVICE_ROLE = "postgres_exporter"


def _set_password(conn: psycopg.Connection[tuple[object, ...]], role: str, password: str) -> None:
    conn.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
    )


def set_postgres_exporter_password(
    conn: psycopg.Connection[tuple[object, ...]], password: str
) -> None:
    """Give the exporter role (created by the migrations) its password from a secret."""
    _set_password(conn, POSTGRES_EXPORTER_ROLE, password)


def set_postgres_platform_password(
    conn: psycopg.Connection[tuple[object, ...]], password: str
) -> None:
    """Give the platform role (created by the migrations) its password from a secret."""
    _set_password(conn, POSTGRES_PLATFORM_ROLE, password)
