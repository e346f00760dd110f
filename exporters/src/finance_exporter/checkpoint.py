"""Checkpoint of incremental totals, so a restarted exporter continues instead of rescanning.

The file holds two parts. `queries`: totals complete below their watermark, served as they are.
`backfills`: the first fold of a query still under way (backfill.py), complete below its
watermark but not yet up to its target. The second part is a key that exporters older than it
never read, so the format keeps version 1 both ways: an old exporter ignores a partial fold (and
counts from zero), a new one reads an old file as it always was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
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


@dataclass(frozen=True)
class Partial:
    """A first fold under way: totals complete below `totals.watermark`, to go up to `target`.

    `start` is the low end of the first chunk that found rows (None until one did), so that the
    progress ratio measures the range that holds data rather than the empty ids below it.
    """

    fingerprint: str
    database: str
    totals: Totals
    target: int
    start: int | None = None


def fingerprint(spec: QuerySpec) -> str:
    """Identify what a query counts: its SQL and its metric's columns."""
    text = "\x00".join([spec.sql, spec.metric.name, *spec.metric.key_columns()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CheckpointStore:
    """Reads and atomically replaces one JSON checkpoint file; a missing directory disables it.

    Two threads write it: the refresher (complete totals, `save`) and the backfill (partial
    folds, `save_partial`). Each write replaces the whole file with both parts as last given,
    under one lock, so neither writer drops what the other saved.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._partials: dict[str, Partial] = {}

    def load(self) -> dict[str, Entry]:
        """Return saved entries by query name; an unreadable file is logged and ignored."""
        self._entries, self._partials = self._read()
        return dict(self._entries)

    def partials(self) -> dict[str, Partial]:
        """The partial folds read by the latest `load`, by query name."""
        return dict(self._partials)

    def save(self, entries: Mapping[str, Entry]) -> None:
        """Write all complete entries at once; a complete entry supersedes a query's partial."""
        with self._lock:
            partials = {n: p for n, p in self._partials.items() if n not in entries}
            self._write(dict(entries), partials)

    def save_partial(self, name: str, partial: Partial) -> None:
        """Write the progress of one query's first fold, keeping everything else as saved."""
        with self._lock:
            self._write(self._entries, {**self._partials, name: partial})

    def _read(self) -> tuple[dict[str, Entry], dict[str, Partial]]:
        if self.path is None or not self.path.exists():
            return {}, {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            if document.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown checkpoint version {document.get('version')!r}")
            entries = {name: _entry(raw) for name, raw in document["queries"].items()}
            partials = {name: _partial(raw) for name, raw in document.get("backfills", {}).items()}
        except (OSError, ValueError, KeyError, TypeError, InvalidOperation) as err:
            logger.warning(
                "checkpoint ignored", extra={"file.path": str(self.path), "error.message": str(err)}
            )
            return {}, {}
        return entries, partials

    def _write(self, entries: dict[str, Entry], partials: dict[str, Partial]) -> None:
        """Write both parts (temporary file, fsync, rename); remember them once written."""
        if self.path is None:
            return
        document: dict[str, object] = {
            "version": FORMAT_VERSION,
            "queries": {name: _raw(entry) for name, entry in sorted(entries.items())},
        }
        if partials:
            document["backfills"] = {
                name: _raw_partial(partial) for name, partial in sorted(partials.items())
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
        self._entries, self._partials = entries, partials


def _raw(entry: Entry | Partial) -> dict[str, object]:
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


def _raw_partial(partial: Partial) -> dict[str, object]:
    return {**_raw(partial), "target": partial.target, "start": partial.start}


def _entry(raw: dict[str, object]) -> Entry:
    rows = raw["totals"]
    if not isinstance(rows, list):
        raise ValueError("totals must be a list")
    values = {
        tuple(str(k) for k in row["key"]): tuple(Decimal(str(v)) for v in row["values"])
        for row in rows
    }
    return Entry(
        fingerprint=str(raw["fingerprint"]),
        database=str(raw["database"]),
        totals=Totals(watermark=_integer(raw, "watermark"), values=values),
    )


def _partial(raw: dict[str, object]) -> Partial:
    entry = _entry(raw)
    start = raw.get("start")
    return Partial(
        fingerprint=entry.fingerprint,
        database=entry.database,
        totals=entry.totals,
        target=_integer(raw, "target"),
        start=None if start is None else _integer(raw, "start"),
    )


def _integer(raw: dict[str, object], key: str) -> int:
    value = raw[key]
    if not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value
