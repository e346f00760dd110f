"""Redis source: bounded reads in one round trip (a pipeline or MGET), never SCAN."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import redis

from finance_exporter.errors import SourceQueryError, SourceTimeoutError, SourceUnavailableError
from finance_exporter.spec import RedisRead

logger = logging.getLogger(__name__)

# Below this many seconds left, a read is not sent: it could not be answered in time.
_MIN_READ_SECONDS = 0.01

Command = tuple[str, ...]


class _Connection(Protocol):
    """The part of redis-py's Connection used here, typed (redis-py leaves it untyped)."""

    @property
    def is_connected(self) -> bool:
        """True while the socket is open."""

    def connect(self) -> None:
        """Open the socket and run the handshake."""

    def disconnect(self) -> None:
        """Close the socket."""

    def pack_commands(self, commands: Sequence[Command]) -> list[bytes]:
        """Encode commands for one write."""

    def send_packed_command(self, command: list[bytes], check_health: bool = True) -> None:
        """Write encoded commands."""

    def read_response(self, *, timeout: float) -> object:
        """Read one reply, waiting at most `timeout` seconds."""


class WrongTypeValue:
    """Marks a key that holds another Redis type than the command expects."""

    def __repr__(self) -> str:
        return "WrongTypeValue()"


WRONG_TYPE = WrongTypeValue()


class RedisSource:
    """Reads a fixed set of keys per query over one persistent connection.

    Each fetch has a budget (the query's share of the scrape deadline, at most the configured
    socket timeout) that bounds the connect, the handshake and every reply read, so a stopped
    or frozen server costs a scrape its budget and no more. redis-py's own retries are off:
    each would wait a full socket timeout again. A fetch instead reconnects once, within its
    budget, after a connection error (a server restarted since the previous refresh).
    """

    def __init__(self, url: str, timeout_seconds: float) -> None:
        # The pool only parses the URL (scheme, host, user, db): connections are made here.
        parsed = redis.ConnectionPool.from_url(url)
        self._connection_class: Callable[..., _Connection] = parsed.connection_class
        self._settings: dict[str, object] = dict(parsed.connection_kwargs)
        self._timeout_seconds = timeout_seconds
        self._connection: _Connection | None = None

    def close(self) -> None:
        """Close the connection, if any."""
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None

    def fetch(self, read: RedisRead, timeout_seconds: float) -> list[object]:
        """Return one raw value per label value: a string, an int, None (absent) or WRONG_TYPE.

        The read gives up after `timeout_seconds` (or the configured socket timeout, if shorter).
        """
        deadline = time.monotonic() + min(timeout_seconds, self._timeout_seconds)
        keys = [read.key_template.format(value) for value in read.label_values]
        if read.command == "mget_age":
            commands: list[Command] = [("MGET", *keys)]
        else:
            commands = [(read.command.upper(), key) for key in keys]
        try:
            try:
                replies = self._round_trip(commands, deadline)
            except redis.ConnectionError:
                self.close()
                replies = self._round_trip(commands, deadline)
        except redis.TimeoutError as err:
            self.close()
            raise SourceTimeoutError(str(err)) from err
        except redis.ConnectionError as err:
            self.close()
            raise SourceUnavailableError(str(err)) from err
        except redis.RedisError as err:
            self.close()
            raise SourceQueryError(str(err)) from err
        if read.command == "mget_age":
            values = _reply(replies[0])
            return list(values) if isinstance(values, list) else [values]
        return [_reply(reply) for reply in replies]

    def _round_trip(self, commands: Sequence[Command], deadline: float) -> list[object]:
        """Send every command at once, then read each reply with what is left of the budget."""
        connection = self._connect(deadline)
        connection.send_packed_command(connection.pack_commands(commands), check_health=False)
        replies: list[object] = []
        for _ in commands:
            try:
                replies.append(connection.read_response(timeout=_remaining(deadline)))
            except redis.ResponseError as err:  # an error reply, read whole: the stream is intact
                replies.append(err)
        return replies

    def _connect(self, deadline: float) -> _Connection:
        if self._connection is not None and self._connection.is_connected:
            return self._connection
        self.close()
        budget = _remaining(deadline)
        # The handshake (AUTH, SELECT, CLIENT SETINFO) reads with socket_timeout: the budget too.
        connection = self._connection_class(
            **{
                **self._settings,
                "socket_timeout": budget,
                "socket_connect_timeout": budget,
                "decode_responses": True,
            }
        )
        self._connection = connection
        connection.connect()
        return connection


def _remaining(deadline: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining < _MIN_READ_SECONDS:
        raise redis.TimeoutError("no time left before the deadline")
    return remaining


def _reply(reply: object) -> object:
    if isinstance(reply, redis.ResponseError):
        if str(reply).startswith("WRONGTYPE"):
            return WRONG_TYPE
        raise SourceQueryError(str(reply))
    if isinstance(reply, redis.ConnectionError):
        raise SourceUnavailableError(str(reply))
    return reply
