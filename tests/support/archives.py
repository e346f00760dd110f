"""A small backup archive on disk, written by finance_stack.archive from real files: two
stores (a Prometheus with one block and a WAL segment, an Alertmanager) and one skipped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from finance_stack import archive
from finance_stack.tarstream import Entry, sha256_of

PINS = {"alertmanager": "prom/alertmanager:v0.28.1", "prometheus": "prom/prometheus:v3.5.0"}
BLOCK = "01JZ0000000000000000000000"
WAL = "prometheus/wal/00000001"
# The WAL segment is big enough that cutting the archive in half cuts inside it.
FILES = {
    f"prometheus/{BLOCK}/meta.json": b'{"ulid": "%s"}' % BLOCK.encode(),
    f"prometheus/{BLOCK}/chunks/000001": b"chunk" * 100,
    WAL: b"WAL-RECORD" + os.urandom(200_000) + b"END",
    "alertmanager/nflog": b"nflog",
    "alertmanager/silences": b"silences",
}
DIRS = {"prometheus": [BLOCK, f"{BLOCK}/chunks", "wal"], "alertmanager": []}


def manifest_for(staging: Path, **overrides: Any) -> dict[str, Any]:
    stores = {}
    for store, dirs in DIRS.items():
        entries = [
            Entry(path.split("/", 1)[1], len(data), sha256_of(staging / path), 0o644)
            for path, data in FILES.items()
            if path.startswith(f"{store}/")
        ]
        stores[store] = {
            "status": "backed-up",
            **archive.file_entries(store, entries, [(d, 0o755) for d in dirs]),
        }
    stores["grafana"] = {"status": "skipped", "reason": "grafana is not running (exited)"}
    return {
        "format": archive.FORMAT,
        "format_version": archive.FORMAT_VERSION,
        "pins": PINS,
        "stores": stores,
        **overrides,
    }


def make_archive(tmp_path: Path, gzip: bool = False, **overrides: Any) -> Path:
    staging = tmp_path / "staging"
    for path, data in FILES.items():
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
        (staging / path).write_bytes(data)
    target = tmp_path / ("backup.tar.gz" if gzip else "backup.tar")
    archive.write(staging, manifest_for(staging, **overrides), target, gzip)
    return target
