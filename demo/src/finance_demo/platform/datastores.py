"""The platform's datastore clients: a small Postgres pool and a Redis client, both self-healing.

A datastore that is down turns into DatastoreUnavailableError, which the HTTP layer answers
with 503; the broken connection is dropped, and the next request connects afresh, so the
platform recovers on its own when the datastore returns. State changes are logged once.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg
import redis

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 2
# Each request runs a handful of short statements; anything slower is a sick database.
STATEMENT_TIMEOUT_MS = 3000
REDIS_TIMEOUT_SECONDS = 2.0
POOL_SIZE = 4

Row = tuple[object, ...]
Connection = psycopg.Connection[Row]
T = TypeVar("T")


class DatastoreUnavailableError(Exception):
    """A datastore did not answer; the request fails with 503."""

    def __init__(self, datastore: str, reason: str) -> None:
        super().__init__(f"{datastore} unavailable: {reason}")
        self.datastore = datastore


class _Health:
    """Logs the first failure and the recovery of one datastore, not every request."""

    def __init__(self, datastore: str) -> None:
        self._datastore = datastore
        self._down = False
        self._lock = threading.Lock()

    def failed(self, err: BaseException) -> None:
        with self._lock:
            if not self._down:
                self._down = True
                logger.warning(
                    "datastore down",
                    extra={"datastore": self._datastore, "error.message": _first_line(err)},
                )

    def succeeded(self) -> None:
        if not self._down:
            return
        with self._lock:
            if self._down:
                self._down = False
                logger.info("datastore recovered", extra={"datastore": self._datastore})


class PostgresPool:
    """At most POOL_SIZE connections, created on demand; a broken one is closed, not reused."""

    def __init__(self, url: str, size: int = POOL_SIZE) -> None:
        self._url = url
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._health = _Health("postgres")
        self._probe: Connection | None = None
        self._probe_lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction, committed when the block ends without error."""
        if not self._slots.acquire(timeout=CONNECT_TIMEOUT_SECONDS):
            raise DatastoreUnavailableError("postgres", "connection pool exhausted")
        conn: Connection | None = None
        healthy = False
        try:
            conn = self._checkout()
            with conn.transaction():
                yield conn
            self._health.succeeded()
            healthy = True
        except psycopg.OperationalError as err:
            self._health.failed(err)
            raise DatastoreUnavailableError("postgres", _first_line(err)) from err
        except Exception:
            # A constraint error or a 4xx from the handler: rolled back, the connection is fine.
            healthy = True
            raise
        finally:
            if conn is not None:
                if healthy and not conn.broken and not conn.closed:
                    self._idle.put(conn)
                else:
                    # A failure left it in an unknown state: never hand it out again.
                    conn.close()
            self._slots.release()

    def _checkout(self) -> Connection:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                    application_name="finance-demo-platform",
                )
            if not conn.closed and not conn.broken:
                return conn
            conn.close()

    def ping(self, timeout_seconds: float) -> None:
        """`SELECT 1` on a connection of its own (not the pool's); raise if Postgres is down.

        The probe keeps its connection between calls, so a readiness check costs no login; one
        broken by a restart is replaced once before the probe counts as failed.
        """
        with self._probe_lock:
            for attempt in (1, 2):
                try:
                    if self._probe is None or self._probe.closed or self._probe.broken:
                        self._probe = psycopg.connect(
                            self._url,
                            autocommit=True,
                            # libpq's smallest connect timeout is 2s; the caller waits less.
                            connect_timeout=max(2, round(timeout_seconds)),
                            options=f"-c statement_timeout={round(timeout_seconds * 1000)}",
                            application_name="finance-demo-platform-readyz",
                        )
                    self._probe.execute("SELECT 1")
                    self._health.succeeded()
                    return
                except psycopg.OperationalError as err:
                    if self._probe is not None:
                        self._probe.close()
                    self._probe = None
                    if attempt == 2:
                        self._health.failed(err)
                        raise DatastoreUnavailableError("postgres", _first_line(err)) from err

    def close(self) -> None:
        """Close the idle connections and the probe's."""
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
                self._probe = None
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class RedisStore:
    """A Redis client whose errors become DatastoreUnavailableError (redis-py reconnects)."""

    def __init__(self, url: str) -> None:
        self.client: redis.Redis = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            decode_responses=True,
        )
        self._health = _Health("redis")
        self._url = url
        self._probe: redis.Redis | None = None

    def ping(self, timeout_seconds: float) -> None:
        """PING on a client of its own with short timeouts; raise if Redis is down."""
        if self._probe is None:
            # Kept between calls: redis-py reconnects by itself after a failure.
            self._probe = redis.Redis.from_url(
                self._url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
            )
        try:
            self._probe.ping()
        except (redis.ConnectionError, redis.TimeoutError) as err:
            self._health.failed(err)
            raise DatastoreUnavailableError("redis", _first_line(err)) from err
        self._health.succeeded()

    def run(self, action: Callable[[redis.Redis], T]) -> T:
        """Run `action` against Redis; connection failures become DatastoreUnavailableError."""
        try:
            result = action(self.client)
        except (redis.ConnectionError, redis.TimeoutError) as err:
            self._health.failed(err)
            raise DatastoreUnavailableError("redis", _first_line(err)) from err
        self._health.succeeded()
        return result

    def close(self) -> None:
        """Close the clients' connections."""
        self.client.close()
        if self._probe is not None:
            self._probe.close()


def _first_line(err: BaseException) -> str:
    return (str(err).strip() or type(err).__name__).splitlines()[0]
