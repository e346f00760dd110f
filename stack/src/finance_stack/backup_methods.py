"""How `backup` copies each kind of store (finance_stack.stores.METHODS): a worker next to its
files, the pauses around it, and what the store holds, read from its service (docs/operations.md,
"Why each store is copied the way it is")."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finance_stack import archive, captures, secrets_archive, tarstream, tsdb, workers
from finance_stack.compose import Project
from finance_stack.engine import Engine
from finance_stack.health import base_url
from finance_stack.stores import ALERTMANAGER_MAINTENANCE_SECONDS, Store
from finance_stack.workers import Worker

# The backed-up range ends this long before the pause: every sample older than that was
# committed before it (a scrape commits within its timeout, 10s here; a rule group within its
# interval, 15s), so the live Prometheus and the snapshot hold the same samples up to the end.
MARGIN_SECONDS = 60
# Attempts at a silence list that did not change while Alertmanager's files were copied.
SILENCE_ATTEMPTS = 3
# The row counts read from a store's SQLite database: (file, table, what the count is called).
SQLITE_COUNTS = {
    "grafana": ("grafana.db", "annotation", "annotations"),
    "uptime-kuma": ("kuma.db", "monitor", "monitors"),
}
# Capabilities of the root worker that reads ./secrets (files of many uids, mode 0600).
SECRETS_READ_CAPS = ("DAC_READ_SEARCH",)


class BackupError(RuntimeError):
    """A store could not be backed up; nothing was written."""


@dataclass(frozen=True)
class Options:
    """What `backup` was asked for."""

    to: Path
    gzip: bool = False
    encrypt_key: Path | None = None
    include_secrets: bool = False
    only: tuple[str, ...] = ()
    margin_seconds: int = MARGIN_SECONDS


@dataclass
class Context:
    """One backup's state, shared by the store methods."""

    root: Path
    project: Project
    states: dict[str, str]
    engine: Engine
    options: Options
    staging: Path
    stamp: str
    say: Callable[[str], None]
    sleep: Callable[[float], None]
    notes: list[str] = field(default_factory=list)

    def base(self, service: str | None) -> str | None:
        entry = self.project.services.get(service or "")
        return base_url(entry) if entry is not None else None


def skip_reason(store: Store, project: Project, states: dict[str, str], root: Path) -> str | None:
    """Why `store` is skipped (its service is not running), or None."""
    if store.service is None:
        return None if (root / "secrets").is_dir() else "no ./secrets folder (start writes it)"
    if store.service not in project.services:
        return f"{store.service} is not in the running profiles ({project.profiles})"
    state = states.get(store.service)
    if state == "paused":
        return (
            f"{store.service} is paused (an interrupted backup? docker compose unpause"
            f" {store.service})"
        )
    if state != "running":
        return f"{store.service} is not running ({state or 'no container'})"
    return None


def mb(size: int) -> str:
    """A size in megabytes, for people."""
    return f"{size / 1e6:.1f} MB"


def _export(
    ctx: Context,
    store: Store,
    args: list[str],
    read_only: bool,
    pause: list[str] | None = None,
) -> dict[str, Any]:
    """Run an export worker into the staging folder: the manifest's files and dirs entries."""
    dest = ctx.staging / store.name
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(mode=0o700)
    command = ctx.engine.worker(store, [*args, *(["--handshake"] if pause else [])], read_only)
    worker = Worker(command, ctx.engine.environ, f"{store.name}: export")
    received = worker.read_stdout(lambda out: tarstream.receive(out, dest, modes=False))
    entry: dict[str, Any] = {}
    try:
        if pause is not None:
            report, held = workers.paused(ctx.engine, pause, worker)
            worker.join(workers.STEP_TIMEOUT_SECONDS)
            entry["paused_seconds"] = round(held, 3)
        else:
            report = worker.finish()
    except BaseException:
        worker.kill()
        raise
    files, dirs = received[0]
    if report.get("missing"):
        entry["missing"] = report["missing"]
    return {**entry, **archive.file_entries(store.name, files, dirs)}


def _prometheus(ctx: Context, store: Store) -> dict[str, Any]:
    mount = ctx.engine.mount_path(store)
    name = f"{tsdb.SNAPSHOT_PREFIX}{ctx.stamp}"
    command = ctx.engine.worker(store, ["snapshot-prometheus", mount, name, "--handshake"], False)
    worker = Worker(command, ctx.engine.environ, "prometheus: snapshot")
    worker.read_stdout(lambda out: out.read())
    paused_at = time.time()
    try:
        report, held = workers.paused(ctx.engine, ["prometheus"], worker)
        worker.join(workers.STEP_TIMEOUT_SECONDS)
    except BaseException:
        worker.kill()
        raise
    ctx.say(
        f"prometheus: paused for {held:.2f}s: {report['blocks']} blocks hard-linked"
        f" ({mb(report['linked_bytes'])}), {report['copied_files']} WAL and head files copied"
        f" ({mb(report['copied_bytes'])})"
    )
    entry = _export(ctx, store, ["export", f"{mount}/{report['path']}", "--remove-after"], False)
    entry.update(paused_seconds=round(held, 3), snapshot=report)
    base = ctx.base("prometheus")
    if base is None:
        ctx.notes.append("prometheus: no published port, so no series and sample counts")
        return entry
    end = math.floor(paused_at) - ctx.options.margin_seconds
    lowest = captures.lowest_timestamp(base)
    start = lowest - 1 if lowest is not None and lowest - 1 < end else end - 1
    counts = captures.prometheus_counts(base, start, end)
    entry["counts"] = asdict(counts)
    ctx.say(
        f"prometheus: {counts.series} series, {counts.samples} samples over"
        f" ({counts.start}, {counts.end}], {counts.end - counts.start}s"
    )
    return entry


def _alertmanager(ctx: Context, store: Store) -> dict[str, Any]:
    base = ctx.base(store.service)
    mount = ctx.engine.mount_path(store)
    only = [flag for name in store.files for flag in ("--only", name)]
    entry: dict[str, Any] = {}
    for _ in range(SILENCE_ATTEMPTS):
        before = captures.alertmanager_silences(base) if base else None
        # What the API lists now is in the files after the next maintenance (at most this).
        ctx.sleep(ALERTMANAGER_MAINTENANCE_SECONDS + 1)
        entry = _export(ctx, store, ["export", mount, *only], True)
        after = captures.alertmanager_silences(base) if base else None
        if before is None or after is None or [s["id"] for s in before] == [s["id"] for s in after]:
            break
    else:
        raise BackupError("alertmanager: its silences kept changing while it was backed up")
    if after is not None:
        entry["silences"] = after
        entry["counts"] = {"silences": len(after)}
        ctx.say(f"alertmanager: {len(after)} silences")
    return entry


def _paused_volume(ctx: Context, store: Store) -> dict[str, Any]:
    services = None
    base = ctx.base(store.service)
    if store.name == "jaeger" and base is not None:
        services = captures.jaeger_services(base)
    entry = _export(
        ctx, store, ["export", ctx.engine.mount_path(store)], True, [str(store.service)]
    )
    ctx.say(f"{store.name}: paused for {entry['paused_seconds']:.2f}s while its files were read")
    if services is not None:
        entry["counts"] = {"services": len(services)}
        entry["services"] = services
    if store.name in SQLITE_COUNTS:
        database, table, what = SQLITE_COUNTS[store.name]
        count = captures.sqlite_count(ctx.staging / store.name / database, table)
        entry["counts"] = {what: count}
    return entry


def _elasticsearch(ctx: Context, store: Store) -> dict[str, Any]:
    name = f"ai-finance-{ctx.stamp.lower()}"  # Elasticsearch's snapshot names are lowercase
    worker = Worker(
        ctx.engine.elastic(["elastic-snapshot", "--snapshot", name, "--handshake"]),
        ctx.engine.environ,
        "elasticsearch: snapshot",
    )
    worker.read_stdout(lambda out: out.read())
    writers = [w for w in store.writers if ctx.states.get(w) == "running"]
    try:
        report, held = workers.paused(ctx.engine, writers, worker, workers.STEP_TIMEOUT_SECONDS)
        worker.join(workers.STEP_TIMEOUT_SECONDS)
    except BaseException:
        worker.kill()
        raise
    indices = report["indices"]
    ctx.say(
        f"elasticsearch: snapshot {name} of {len(indices)} indices,"
        f" {sum(indices.values())} documents ({', '.join(writers) or 'no writer'} paused"
        f" {held:.2f}s)"
    )
    entry = _export(ctx, store, ["export", ctx.engine.mount_path(store)], True)
    return {**entry, "snapshot": name, "counts": {"indices": indices}}


def _secrets(ctx: Context, store: Store) -> dict[str, Any]:
    key = ctx.options.encrypt_key
    command = ctx.engine.worker(
        store, ["export", ctx.engine.mount_path(store)], True, SECRETS_READ_CAPS
    )
    worker = Worker(command, ctx.engine.environ, "secrets: export")
    read = worker.read_stdout(lambda out: out.read(secrets_archive.MAX_BYTES + 1))
    try:
        worker.finish()
    except BaseException:
        worker.kill()
        raise
    if len(read[0]) > secrets_archive.MAX_BYTES:
        raise BackupError(f"./secrets holds over {secrets_archive.MAX_BYTES} bytes")
    inner, names = secrets_archive.inner_tar(read[0])
    data = secrets_archive.encrypt(inner, key) if key else inner
    name = secrets_archive.ENCRYPTED if key else secrets_archive.INNER
    dest = ctx.staging / store.name
    dest.mkdir(mode=0o700)
    fd = os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    digest = hashlib.sha256(data).hexdigest()
    ctx.say(f"secrets: {len(names)} files, {'encrypted' if key else 'NOT encrypted'}")
    return {
        "files": [
            {"path": f"{store.name}/{name}", "size": len(data), "sha256": digest, "mode": 0o600}
        ],
        "dirs": [],
        "sensitive": True,
        "encrypted": key is not None,
        "names": names,
    }


METHODS: dict[str, Callable[[Context, Store], dict[str, Any]]] = {
    "prometheus": _prometheus,
    "files": _alertmanager,
    "paused-volume": _paused_volume,
    "elasticsearch": _elasticsearch,
    "secrets": _secrets,
}
