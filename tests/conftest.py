"""Shared fixtures: a real PostgreSQL cluster and Redis server, fresh databases, exporters."""

from __future__ import annotations

import secrets
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider

from finance_demo.access import POSTGRES_EXPORTER_ROLE, set_postgres_exporter_password
from finance_demo.migrate import migrate
from finance_exporter.cli import Exporter, build
from finance_exporter.config import Options, load_settings
from finance_exporter.snapshot import Clock, SystemClock
from finance_stack.access import REDIS_EXPORTER_USER
from support.datastores import (
    Database,
    RedisDb,
    StartExporter,
    create_redis_exporter_user,
    tempdir,
)
from support.servers import PostgresServer, RedisServer

TEMPLATE_DB = "reference_template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session, with pg_stat_statements to count queries."""
    root = tempdir("finance-pg-")
    root.chmod(0o755)
    server = PostgresServer(root)
    server.init()
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def exporter_password(postgres_server: PostgresServer) -> str:
    """The read-only exporter role's password, set once for the cluster."""
    password = secrets.token_urlsafe(16)
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    with psycopg.connect(postgres_server.url(dbname=TEMPLATE_DB), autocommit=True) as conn:
        migrate(conn)
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        set_postgres_exporter_password(conn, password)
    return password


@contextmanager
def _fresh_database(server: PostgresServer, exporter_password: str) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    yield Database(
        name=name,
        admin_url=server.url(dbname=name),
        exporter_url=server.url(POSTGRES_EXPORTER_ROLE, exporter_password, name),
    )
    if server.pid is not None:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database(postgres_server: PostgresServer, exporter_password: str) -> Iterator[Database]:
    """A fresh database cloned from the migrated template, dropped after the test."""
    with _fresh_database(postgres_server, exporter_password) as fresh:
        yield fresh


@pytest.fixture(scope="module")
def module_database(postgres_server: PostgresServer, exporter_password: str) -> Iterator[Database]:
    """A fresh database shared by the tests of one module (for data they only read)."""
    with _fresh_database(postgres_server, exporter_password) as fresh:
        yield fresh


@pytest.fixture
def pg_admin_url(database: Database) -> str:
    """Superuser URL of a fresh, migrated, empty database."""
    return database.admin_url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One Redis server for the session."""
    root = tempdir("finance-redis-")
    server = RedisServer(root)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _emptied_redis(server: RedisServer) -> Iterator[RedisDb]:
    password = secrets.token_urlsafe(16)
    client = redis.Redis.from_url(server.url())
    client.flushall()
    create_redis_exporter_user(client, password)
    yield RedisDb(
        admin_url=server.url(),
        exporter_url=server.url(REDIS_EXPORTER_USER, password),
    )
    client.close()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[RedisDb]:
    """The Redis server emptied for this test, with the exporter's read-only ACL user."""
    with _emptied_redis(redis_server) as emptied:
        yield emptied


@pytest.fixture(scope="module")
def module_redis_db(redis_server: RedisServer) -> Iterator[RedisDb]:
    """The Redis server emptied once for one module's tests (for data they only read).

    Only for modules none of whose tests ask for `redis_db`, which would empty it again.
    """
    with _emptied_redis(redis_server) as emptied:
        yield emptied


@pytest.fixture
def redis_url(redis_db: RedisDb) -> str:
    """Admin URL of the emptied test Redis."""
    return redis_db.admin_url


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a query file from YAML text and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / f"config-{uuid.uuid4().hex[:6]}.yml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def start_exporter(tmp_path: Path) -> Iterator[StartExporter]:
    """Start exporters in this process on free ports; all are stopped after the test."""
    running: list[tuple[Exporter, threading.Thread]] = []

    def start(
        name: str,
        database_url: str | None,
        redis_url: str | None,
        clock: Clock | None = None,
        config_file: Path | None = None,
        checkpoint_dir: Path | None = None,
        tracer_provider: TracerProvider | None = None,
        environ: Mapping[str, str] | None = None,
        backfilled: bool = True,
    ) -> Exporter:
        env = dict(environ or {})
        if database_url:
            env["DATABASE_URL"] = database_url
        if redis_url:
            env["REDIS_URL"] = redis_url
        settings = load_settings(
            Options(
                exporter=name,
                environ=env,
                listen="127.0.0.1:0",
                config_file=str(config_file) if config_file else None,
                checkpoint_dir=str(checkpoint_dir or tmp_path / f"checkpoint-{name}"),
            )
        )
        exporter = build(settings, clock or SystemClock(), tracer_provider)
        thread = threading.Thread(target=exporter.server.serve_forever, daemon=True)
        thread.start()
        running.append((exporter, thread))
        # Most tests read counters from the first scrape: let the first folds (backfill.py)
        # finish, or fail once, before it. Tests of the fold itself pass backfilled=False.
        if backfilled:
            assert exporter.wait_backfilled(timeout_seconds=60), "first folds did not settle"
        return exporter

    yield start
    for exporter, thread in running:
        exporter.server.shutdown()
        thread.join(timeout=10)
        exporter.close()
