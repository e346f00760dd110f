"""The demo platform as a subprocess on free loopback ports, stopped by pid, and the
datastores it runs on: a database cloned from the migrated template and the Redis server, with
the platform's and the exporter's least-privilege users."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from finance_demo.access import (
    POSTGRES_EXPORTER_ROLE,
    POSTGRES_PLATFORM_ROLE,
    set_postgres_platform_password,
)
from finance_demo.platform.app import SERVICES
from finance_stack.access import REDIS_EXPORTER_USER, REDIS_PLATFORM_USER
from support.datastores import create_redis_exporter_user, create_redis_platform_user
from support.servers import PostgresServer, RedisServer

START_TIMEOUT_SECONDS = 30.0
# The migrated, empty database tests/conftest.py makes once per session.
TEMPLATE_DB = "reference_template"


@dataclass(frozen=True)
class PlatformStores:
    """A fresh database and the emptied Redis, with URLs for each role that reads them."""

    admin_url: str
    platform_url: str
    exporter_url: str
    redis_admin_url: str
    redis_platform_url: str
    redis_exporter_url: str


@contextmanager
def platform_stores(
    postgres: PostgresServer, exporter_password: str, redis_server: RedisServer
) -> Iterator[PlatformStores]:
    """A database cloned from the template (dropped afterwards) and the Redis server emptied,
    with the platform's and the exporter's passwords and ACL users set."""
    name = f"t_platform_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
    admin_url = postgres.url(dbname=name)
    pg_password = secrets.token_urlsafe(16)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        set_postgres_platform_password(conn, pg_password)
    redis_password = secrets.token_urlsafe(16)
    admin = redis.Redis.from_url(redis_server.url())
    admin.flushall()
    create_redis_platform_user(admin, redis_password)
    create_redis_exporter_user(admin, redis_password)
    try:
        yield PlatformStores(
            admin_url=admin_url,
            platform_url=postgres.url(POSTGRES_PLATFORM_ROLE, pg_password, name),
            exporter_url=postgres.url(POSTGRES_EXPORTER_ROLE, exporter_password, name),
            redis_admin_url=redis_server.url(),
            redis_platform_url=redis_server.url(REDIS_PLATFORM_USER, redis_password),
            redis_exporter_url=redis_server.url(REDIS_EXPORTER_USER, redis_password),
        )
    finally:
        admin.close()
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port_range(count: int) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that nothing listens on."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first: int = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def request(
    url: str,
    body: dict[str, object] | None = None,
    timeout_seconds: float = 10.0,
    method: str | None = None,
) -> tuple[int, dict[str, object]]:
    """GET `url`, or POST (or `method`) `body` as JSON; the status and the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    outgoing = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method=method or ("POST" if data else "GET"),
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout_seconds) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@dataclass
class PlatformProcess:
    """`finance-demo platform` running as a child process; its stdout goes to `log`."""

    base_port: int
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, service: str, path: str = "") -> str:
        """The URL of `path` on `service`."""
        return f"http://127.0.0.1:{self.base_port + SERVICES.index(service)}{path}"

    @property
    def gateway(self) -> str:
        """The gateway's base URL."""
        return self.url("api-gateway")

    def log_lines(self) -> list[dict[str, object]]:
        """Every JSON log line written so far."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> int:
        """SIGTERM, then wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_platform(database_url: str, redis_url: str, folder: Path) -> PlatformProcess:
    """Start the platform and wait until every service answers /healthz."""
    base_port = free_port_range(len(SERVICES))
    log = folder / f"platform-{base_port}.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    argv = [sys.executable, "-m", "finance_demo.cli", "platform"]
    argv += ["--listen-host", "127.0.0.1", "--base-port", str(base_port)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    running = PlatformProcess(base_port, log, process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    pending = list(SERVICES)
    while pending:
        if process.poll() is not None or time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"platform did not start:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(running.url(pending[0], "/healthz"), timeout=2):
                pending.pop(0)
        except OSError:
            time.sleep(0.1)
    return running
