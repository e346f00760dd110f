"""Types and values the tests share with their fixtures (tests/conftest.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from finance_exporter.cli import Exporter

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
