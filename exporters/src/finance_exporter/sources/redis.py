"""Redis source: bounded reads in one round trip (a pipeline or MGET), never SCAN."""

from __future__ import annotations

import logging

import redis

from finance_exporter.errors import SourceQueryError, SourceTimeoutError, SourceUnavailableError
from finance_exporter.spec import RedisRead

logger = logging.getLogger(__name__)


class WrongTypeValue:
    """Marks a key that holds another Redis type than the command expects."""

    def __repr__(self) -> str:
        return "WrongTypeValue()"


WRONG_TYPE = WrongTypeValue()


class RedisSource:
    """Reads a fixed set of keys per query over a small persistent connection pool."""

    def __init__(self, url: str, timeout_seconds: float) -> None:
        # The pool keeps one connection for the single refreshing thread; the timeouts bound a
        # stopped or stalled server so a scrape never hangs on it.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            max_connections=2,
            health_check_interval=30,
            decode_responses=True,
        )

    def close(self) -> None:
        """Release the pool's connections."""
        self._client.close()

    def fetch(self, read: RedisRead) -> list[object]:
        """Return one raw value per label value: a string, an int, None (absent) or WRONG_TYPE."""
        keys = [read.key_template.format(value) for value in read.label_values]
        try:
            if read.command == "mget_age":
                return list(self._client.mget(keys))
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                getattr(pipe, read.command)(key)
            replies = pipe.execute(raise_on_error=False)
        except redis.TimeoutError as err:
            raise SourceTimeoutError(str(err)) from err
        except redis.ConnectionError as err:
            raise SourceUnavailableError(str(err)) from err
        except redis.RedisError as err:
            raise SourceQueryError(str(err)) from err
        return [_reply(reply) for reply in replies]


def _reply(reply: object) -> object:
    if isinstance(reply, redis.ResponseError):
        if str(reply).startswith("WRONGTYPE"):
            return WRONG_TYPE
        raise SourceQueryError(str(reply))
    if isinstance(reply, redis.ConnectionError):
        raise SourceUnavailableError(str(reply))
    return reply
