"""The demo's one-off setup job (`finance-demo setup`, compose service demo-setup): migrate the
demo Postgres, give the least-privilege roles their passwords, and seed both datastores once.

The secrets it reads are written by the stack's secrets job (stack/src/finance_stack/secrets.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psycopg
import redis
from psycopg import sql

from finance_demo.access import (
    POSTGRES_EXPORTER_SERVICE_ROLE,
    set_postgres_exporter_password,
    set_postgres_platform_password,
)
from finance_demo.migrate import migrate
from finance_demo.seed import SeedPlan, seed_postgres, seed_redis

# The demo datastores (compose services demo-postgres, demo-redis); the stack's secrets point
# the exporters and the platform at the same ones.
DEMO_POSTGRES = "demo-postgres:5432"
DEMO_DATABASE = "platform"
DEMO_REDIS = "demo-redis:6379"

Progress = Callable[[str], None]


def _read(folder: Path, name: str) -> str:
    return (folder / name).read_text(encoding="utf-8").strip()


def _connect_with_retry(
    url: str, deadline: float, progress: Progress
) -> psycopg.Connection[tuple[object, ...]]:
    while True:
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            progress("waiting for postgres...")
            time.sleep(2)


def setup_demo(
    secrets_dir: Path, payments: int, progress: Progress, timeout_seconds: float = 120
) -> None:
    """Migrate, create least-privilege roles, and seed the demo datastores once (idempotent)."""
    superuser = quote(_read(secrets_dir, "postgres_password"), safe="")
    admin_url = f"postgresql://postgres:{superuser}@{DEMO_POSTGRES}/{DEMO_DATABASE}"
    with _connect_with_retry(admin_url, time.monotonic() + timeout_seconds, progress) as conn:
        applied = migrate(conn)
        progress(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
        set_postgres_exporter_password(conn, _read(secrets_dir, "exporter_pg_password"))
        set_postgres_platform_password(conn, _read(secrets_dir, "platform_pg_password"))
        _postgres_exporter_role(conn, _read(secrets_dir, "postgres_exporter_password"))
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM payments)").fetchone()
        if row is not None and row[0]:
            progress("demo data already seeded")
            return
        plan = SeedPlan(payments=payments)
        counts = seed_postgres(conn, plan, progress)
        progress(f"seeded postgres: {counts.get('payments', 0)} payments")
        client = redis.Redis(
            host=DEMO_REDIS.split(":")[0],
            port=int(DEMO_REDIS.split(":")[1]),
            username="admin",
            password=_read(secrets_dir, "redis_admin_password"),
            socket_timeout=30,
        )
        try:
            seed_redis(client, conn, plan)
        finally:
            client.close()
        progress("seeded redis")


def _postgres_exporter_role(conn: psycopg.Connection[tuple[object, ...]], password: str) -> None:
    """A monitoring role for postgres-exporter: pg_monitor, nothing else."""
    role = sql.Identifier(POSTGRES_EXPORTER_SERVICE_ROLE)
    exists = conn.execute(
        "SELECT 1 FROM pg_roles WHERE rolname = %s", (POSTGRES_EXPORTER_SERVICE_ROLE,)
    ).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CONNECTION LIMIT 3").format(role))
    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(password)))
    conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(role))
