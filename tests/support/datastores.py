"""Types and values the tests share with their fixtures (tests/conftest.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from finance_exporter.cli import Exporter
from finance_stack.access import (
    REDIS_EXPORTER_COMMANDS,
    REDIS_EXPORTER_KEYS,
    REDIS_EXPORTER_USER,
    REDIS_PLATFORM_COMMANDS,
    REDIS_PLATFORM_KEYS,
    REDIS_PLATFORM_USER,
)

# A fixed "now" for seeded history, so expected values do not depend on when tests run.
ANCHOR = datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Database:
    """A fresh, migrated database: a superuser URL and the read-only exporter's URL."""

    name: str
    admin_url: str
    exporter_url: str


@dataclass(frozen=True)
class RedisDb:
    """The test Redis: an admin URL and the read-only exporter user's URL."""

    admin_url: str
    exporter_url: str


def tempdir(prefix: str) -> Path:
    """A new directory under /tmp."""
    # Not under pytest's tmp dirs: those are 0700 and owned by root, and postgres must enter.
    return Path(tempfile.mkdtemp(prefix=prefix))


StartExporter = Callable[..., Exporter]


def _create_redis_user(
    client: redis.Redis, user: str, password: str, keys: tuple[str, ...], commands: tuple[str, ...]
) -> None:
    # The same keys and commands as the ACL file the stack's secrets write (finance_stack.access).
    client.acl_setuser(
        user,
        enabled=True,
        reset=True,
        reset_channels=True,
        passwords=[f"+{password}"],
        keys=list(keys),
        commands=list(commands),
    )


def create_redis_exporter_user(client: redis.Redis, password: str) -> None:
    """Create or reset the exporter's Redis ACL user; re-running it is safe."""
    _create_redis_user(
        client, REDIS_EXPORTER_USER, password, REDIS_EXPORTER_KEYS, REDIS_EXPORTER_COMMANDS
    )


def create_redis_platform_user(client: redis.Redis, password: str) -> None:
    """Create or reset the demo platform's Redis ACL user; re-running it is safe."""
    _create_redis_user(
        client, REDIS_PLATFORM_USER, password, REDIS_PLATFORM_KEYS, REDIS_PLATFORM_COMMANDS
    )
