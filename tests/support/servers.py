"""Real servers on loopback: Postgres and Redis from local binaries (stopped by pid), and the
stack's alert-sink (its HTTP and its SMTP side) in threads."""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import psycopg
import redis

from finance_stack.alert_sink import (
    MAX_NOTIFICATIONS,
    AlertSinkServer,
    NotificationLog,
    make_server,
)
from finance_stack.smtp_sink import MAX_MESSAGE_BYTES, SmtpSinkServer

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], timeout_seconds: float = 15.0) -> None:
    """SIGTERM, then SIGKILL once `timeout_seconds` have passed; by the process' own pid."""
    process.terminate()
    try:
        process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _require(path: Path | str, hint: str) -> str:
    found = shutil.which(str(path))
    if found is None:
        raise RuntimeError(f"{path} not found: {hint}")
    return found


def _wait(probe_name: str, probe: object, log: Path, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        try:
            probe()  # type: ignore[operator]
            return
        except Exception as err:  # any failure means "not ready yet"
            last = str(err)
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{probe_name} did not become ready: {last}\n--- log ---\n{tail}")


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster: scram passwords over TCP on 127.0.0.1 only."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    pid: int | None = None

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def log(self) -> Path:
        """The server log."""
        return self.root / "postgres.log"

    def url(
        self, user: str = "postgres", password: str | None = None, dbname: str = "postgres"
    ) -> str:
        """A connection URL for `user`."""
        secret = self.password if password is None else password
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{dbname}"

    def init(self) -> None:
        """Create the cluster (as the postgres OS user when running as root)."""
        _require(PG_BIN / "initdb", "install Debian's postgresql-15")
        self.root.mkdir(parents=True, exist_ok=True)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown()
        self._run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--pwfile",
                str(pwfile),
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        pwfile.unlink()

    def start(self) -> None:
        """Start the server and wait until `SELECT 1` answers."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off -c max_connections=100"
        )
        self._run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(START_TIMEOUT_SECONDS)),
                "start",
            ]
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

        def probe() -> None:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")

        _wait("postgres", probe, self.log, time.monotonic() + START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Fast shutdown of the postmaster we started, by its pid."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        self.pid = None

    def _chown(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            for path in [self.root, *self.root.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, argv: list[str]) -> None:
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}\n{tail}")


@dataclass
class RedisServer:
    """A throwaway Redis server on 127.0.0.1 with a password for the default user."""

    root: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = "default", password: str | None = None, db: int = 0) -> str:
        """A connection URL for `user`."""
        secret = self.password if password is None else password
        return f"redis://{user}:{secret}@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """Start redis-server in the foreground of a child process and wait for PING."""
        binary = _require("redis-server", "install Debian's redis-server")
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / "redis.log"
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
            "--logfile",
            str(log),
            "--requirepass",
            self.password,
        ]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def probe() -> None:
            assert self.process is not None and self.process.poll() is None, "redis exited"
            redis.Redis.from_url(self.url(), socket_timeout=1).ping()

        _wait("redis", probe, log, time.monotonic() + START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """Stop the server we started, by its pid."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


_Served = TypeVar("_Served", bound=socketserver.BaseServer)


@contextmanager
def _serving(server: _Served) -> Iterator[_Served]:
    """`server` answering in a daemon thread; shut down, closed and joined afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serving_alert_sink(capacity: int = MAX_NOTIFICATIONS) -> Iterator[AlertSinkServer]:
    """The stack's alert-sink on a free loopback port, in a thread, stopped afterwards."""
    with _serving(make_server("127.0.0.1:0", capacity)) as server:
        yield server


@contextmanager
def serving_smtp_sink(
    log: NotificationLog,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    idle_timeout_seconds: float = 10.0,
) -> Iterator[SmtpSinkServer]:
    """The alert-sink's SMTP side on a free loopback port, recording into `log`, in a thread."""
    smtp = SmtpSinkServer(("127.0.0.1", 0), log.add_mail, max_message_bytes, idle_timeout_seconds)
    with _serving(smtp) as server:
        yield server
