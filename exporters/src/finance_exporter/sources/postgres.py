"""Postgres source: one persistent connection, every query in a bounded read-only transaction."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors

from finance_exporter.errors import (
    SourceError,
    SourceQueryError,
    SourceTimeoutError,
    SourceUnavailableError,
)

logger = logging.getLogger(__name__)

# libpq rounds connect_timeout to whole seconds and treats values below 2 as 2.
_MIN_CONNECT_TIMEOUT_SECONDS = 2

_IDENTITY_SQL = """
SELECT (SELECT system_identifier FROM pg_control_system())::text || '/' || d.oid::text
FROM pg_database AS d WHERE d.datname = current_database()
"""

Row = tuple[object, ...]


@dataclass(frozen=True)
class Result:
    """Rows of one query, with column names and, for incremental reads, the new watermark."""

    columns: tuple[str, ...]
    rows: Sequence[Row]
    high: int | None = None


class PostgresSource:
    """Runs queries over one persistent connection, reconnecting after a connection failure.

    Each query runs in its own REPEATABLE READ READ ONLY transaction with `SET LOCAL
    statement_timeout`, so a slow query is cancelled by the server and the connection survives.
    An incremental read takes its upper watermark, the oldest running transaction id
    (pg_snapshot_xmin), from the same snapshot it reads rows with: every transaction below it has
    finished, so its rows are final and visible.
    """

    def __init__(self, dsn: str, application_name: str) -> None:
        self._dsn = dsn
        self._application_name = application_name
        self._conn: psycopg.Connection[Row] | None = None
        self._identity: str | None = None

    def close(self) -> None:
        """Close the connection, if any."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._identity = None

    def fetch(
        self,
        sql: str,
        params: Mapping[str, object],
        timeout_seconds: float,
        incremental: bool = False,
    ) -> Result:
        """Run `sql` with `params` within `timeout_seconds`; incremental reads add `high`."""
        conn = self._connect(timeout_seconds)
        timeout_ms = max(int(timeout_seconds * 1000), 1)
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f"SET LOCAL statement_timeout = {timeout_ms}")
                all_params = dict(params)
                high: int | None = None
                if incremental:
                    cur.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
                    first = cur.fetchone()
                    high = int(str(first[0])) if first else 0
                    all_params["high"] = str(high)
                cur.execute(sql, all_params)
                columns = tuple(col.name for col in cur.description or ())
                rows = cur.fetchall()
        except pg_errors.QueryCanceled as err:
            raise SourceTimeoutError(f"query cancelled after {timeout_ms} ms") from err
        except (psycopg.OperationalError, psycopg.InterfaceError) as err:
            self.close()
            raise SourceUnavailableError(_first_line(err)) from err
        except psycopg.Error as err:
            raise SourceQueryError(_first_line(err)) from err
        return Result(columns=columns, rows=rows, high=high)

    def identity(self, timeout_seconds: float) -> str:
        """Identify the database (cluster system id and database oid), to validate a checkpoint."""
        if self._identity is None:
            result = self.fetch(_IDENTITY_SQL, {}, timeout_seconds)
            self._identity = str(result.rows[0][0]) if result.rows else ""
        return self._identity

    def _connect(self, timeout_seconds: float) -> psycopg.Connection[Row]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        connect_timeout = max(math.ceil(timeout_seconds), _MIN_CONNECT_TIMEOUT_SECONDS)
        try:
            conn = psycopg.connect(
                self._dsn,
                connect_timeout=connect_timeout,
                application_name=self._application_name,
                keepalives=1,
                keepalives_idle=30,
            )
        except psycopg.Error as err:
            raise SourceUnavailableError(_first_line(err)) from err
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        self._conn = conn
        logger.info("postgres connected", extra={"source": "postgres"})
        return conn


def _first_line(err: Exception) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


__all__ = ["PostgresSource", "Result", "Row", "SourceError"]
