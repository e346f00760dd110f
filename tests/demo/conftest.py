"""Fixtures of the demo tests: datastores of their own, for tests that stop them."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator

import psycopg
import pytest

from finance_demo.access import POSTGRES_PLATFORM_ROLE, set_postgres_platform_password
from finance_demo.migrate import migrate
from support.datastores import tempdir
from support.servers import PostgresServer


@pytest.fixture
def own_postgres(exporter_password: str) -> Iterator[tuple[PostgresServer, str]]:
    """A Postgres of its own (this test stops it), migrated, with the platform's password."""
    root = tempdir("finance-pg-outage-")
    root.chmod(0o755)
    server = PostgresServer(root)
    server.init()
    server.start()
    password = secrets.token_urlsafe(16)
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE platform")
    with psycopg.connect(server.url(dbname="platform"), autocommit=True) as conn:
        migrate(conn)
        set_postgres_platform_password(conn, password)
    try:
        yield server, server.url(POSTGRES_PLATFORM_ROLE, password, "platform")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
