"""A crash-consistent copy of a Prometheus TSDB, made inside its own volume while it is paused.

Prometheus' admin API could take a snapshot, but in 3.5 it cannot be limited to one listener,
and its only port is published (on 127.0.0.1) for the UI, so enabling it would publish it. This
does what a snapshot does, from outside: with the process frozen (`docker compose pause`), the
immutable block directories are hard-linked (no data is copied: same inodes, same filesystem)
and the files Prometheus appends to in place (the WAL, the head's m-mapped chunks) are copied,
into snapshots/<name>/ of the same volume. Prometheus writes each commit's WAL records out
before the commit returns and replays its WAL after a crash, so the copy holds every committed
sample, exactly what a crash at that instant would have left. Nothing is fsynced while paused:
the snapshot lives only until it is archived, so a host crash before that loses the backup,
never data.

Left out: the lock file, the active-query log, directories being written or deleted (names
with `.tmp`: Prometheus removes them itself on start), our own snapshots and restore staging.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SNAPSHOTS = "snapshots"
SNAPSHOT_PREFIX = "ai-finance-backup-"
STAGING = ".ai-finance-restore"
# Block directories are ULIDs (26 characters of Crockford's base32).
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_SKIPPED_FILES = {"lock", "queries.active"}


@dataclass(frozen=True)
class SnapshotReport:
    """What a snapshot linked and copied, and how long it took."""

    path: str
    blocks: int
    linked_files: int
    linked_bytes: int
    copied_files: int
    copied_bytes: int
    seconds: float


def is_block(path: Path) -> bool:
    """A persisted block: a ULID-named directory with its meta.json (written last)."""
    return path.is_dir() and bool(_ULID.match(path.name)) and (path / "meta.json").is_file()


def _skipped(path: Path) -> bool:
    return ".tmp" in path.name or path.name in (SNAPSHOTS, STAGING, *_SKIPPED_FILES)


def _tree(source: Path, target: Path, place: Callable[[Path, Path], object]) -> tuple[int, int]:
    """Every file of `source` placed under `target` by `place` (a link or a copy), what is
    skipped left out: (files, bytes)."""
    target.mkdir(mode=0o755)
    files = size = 0
    for entry in sorted(source.iterdir()):
        if _skipped(entry):
            continue
        if entry.is_dir():
            more_files, more_size = _tree(entry, target / entry.name, place)
            files, size = files + more_files, size + more_size
        elif entry.is_file():
            place(entry, target / entry.name)
            files, size = files + 1, size + entry.stat().st_size
    return files, size


def remove_stale(data_dir: Path) -> list[str]:
    """Remove snapshots a killed backup left behind; their names."""
    folder = data_dir / SNAPSHOTS
    stale = sorted(folder.glob(f"{SNAPSHOT_PREFIX}*")) if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path)
    return [path.name for path in stale]


def snapshot(data_dir: Path, name: str) -> SnapshotReport:
    """Blocks hard-linked, everything else copied, into data_dir/snapshots/<name>/; a failure
    removes the partial snapshot and raises."""
    started = time.monotonic()
    folder = data_dir / SNAPSHOTS
    folder.mkdir(mode=0o755, exist_ok=True)
    target = folder / name
    target.mkdir(mode=0o755)
    blocks = linked_files = linked_bytes = copied_files = copied_bytes = 0
    try:
        for entry in sorted(data_dir.iterdir()):
            if _skipped(entry):
                continue
            if is_block(entry):
                files, size = _tree(entry, target / entry.name, os.link)
                blocks, linked_files, linked_bytes = (
                    blocks + 1,
                    linked_files + files,
                    linked_bytes + size,
                )
            elif entry.is_dir():
                files, size = _tree(entry, target / entry.name, shutil.copy2)
                copied_files, copied_bytes = copied_files + files, copied_bytes + size
            elif entry.is_file():
                shutil.copy2(entry, target / entry.name)
                copied_files, copied_bytes = copied_files + 1, copied_bytes + entry.stat().st_size
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return SnapshotReport(
        path=f"{SNAPSHOTS}/{name}",
        blocks=blocks,
        linked_files=linked_files,
        linked_bytes=linked_bytes,
        copied_files=copied_files,
        copied_bytes=copied_bytes,
        seconds=round(time.monotonic() - started, 3),
    )
