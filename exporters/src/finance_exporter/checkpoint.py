"""Checkpoint of incremental totals, so a restarted exporter continues instead of rescanning."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from finance_exporter.aggregate import Totals
from finance_exporter.spec import QuerySpec

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """Saved totals of one query, valid only for the same query text and the same database."""

    fingerprint: str
    database: str
    totals: Totals


def fingerprint(spec: QuerySpec) -> str:
    """Identify what a query counts: its SQL and its metric's columns."""
    text = "\x00".join([spec.sql, spec.metric.name, *spec.metric.key_columns()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CheckpointStore:
    """Reads and atomically replaces one JSON checkpoint file; a missing directory disables it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[str, Entry]:
        """Return saved entries by query name; an unreadable file is logged and ignored."""
        if self.path is None or not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            if document.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown checkpoint version {document.get('version')!r}")
            return {name: _entry(raw) for name, raw in document["queries"].items()}
        except (OSError, ValueError, KeyError, TypeError, InvalidOperation) as err:
            logger.warning(
                "checkpoint ignored", extra={"file.path": str(self.path), "error.message": str(err)}
            )
            return {}

    def save(self, entries: Mapping[str, Entry]) -> None:
        """Write all entries at once (temporary file, fsync, rename)."""
        if self.path is None:
            return
        document = {
            "version": FORMAT_VERSION,
            "queries": {name: _raw(entry) for name, entry in sorted(entries.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".checkpoint-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(document, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _raw(entry: Entry) -> dict[str, object]:
    rows = [
        {"key": list(key), "values": [str(v) for v in values]}
        for key, values in sorted(entry.totals.values.items())
    ]
    return {
        "fingerprint": entry.fingerprint,
        "database": entry.database,
        "watermark": entry.totals.watermark,
        "totals": rows,
    }


def _entry(raw: dict[str, object]) -> Entry:
    rows = raw["totals"]
    if not isinstance(rows, list):
        raise ValueError("totals must be a list")
    values = {
        tuple(str(k) for k in row["key"]): tuple(Decimal(str(v)) for v in row["values"])
        for row in rows
    }
    watermark = raw["watermark"]
    if not isinstance(watermark, int):
        raise ValueError("watermark must be an integer")
    return Entry(
        fingerprint=str(raw["fingerprint"]),
        database=str(raw["database"]),
        totals=Totals(watermark=watermark, values=values),
    )
