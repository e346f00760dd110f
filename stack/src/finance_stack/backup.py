"""`backup`: one archive of every store of the running stack (docs/operations.md, "Backup").

Each store is copied by a worker next to its files (finance_stack.volume_worker) and streamed
to the host, which stages it beside the archive, counts what it holds through the service's
API, and finally writes the archive: manifest.json first, then one folder per store. A store
whose service is not running is skipped, and said so; a store that fails fails the backup,
and nothing is left behind but the error.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finance_stack import archive, secrets_archive
from finance_stack.backup_methods import (
    METHODS,
    BackupError,
    Context,
    Options,
    mb,
    skip_reason,
)
from finance_stack.compose import Project
from finance_stack.engine import Engine
from finance_stack.pins import ComposeFacts
from finance_stack.stores import NOT_BACKED_UP, STORES, Store

__all__ = ["BackupError", "Options", "run", "skip_reason", "summary"]

SECRETS_LEFT_OUT = (
    "not included: give --encrypt-key FILE to include them encrypted, or --include-secrets to"
    " include them in plain text"
)


def _store(ctx: Context, store: Store) -> dict[str, Any]:
    reason = skip_reason(store, ctx.project, ctx.states, ctx.root)
    if store.method == "secrets" and reason is None:
        if ctx.options.encrypt_key is None and not ctx.options.include_secrets:
            reason = SECRETS_LEFT_OUT
    if reason is not None:
        ctx.say(f"{store.name}: skipped: {reason}")
        return {"status": "skipped", "reason": reason, "service": store.service}
    started = time.monotonic()
    entry = METHODS[store.method](ctx, store)
    size = sum(f["size"] for f in entry["files"])
    seconds = round(time.monotonic() - started, 3)
    ctx.say(f"{store.name}: {len(entry['files'])} files, {mb(size)} in {seconds:.1f}s")
    return {
        "status": "backed-up",
        "service": store.service,
        "volume": store.volume,
        "method": store.method,
        "seconds": seconds,
        **entry,
    }


def run(
    root: Path,
    project: Project,
    states: dict[str, str],
    engine: Engine,
    facts: ComposeFacts,
    version: str,
    options: Options,
    progress: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Path, dict[str, Any]]:
    """Back up every store (or `options.only`); the archive's path and its manifest."""
    unknown = sorted(set(options.only) - {store.name for store in STORES})
    if unknown:
        known = ", ".join(store.name for store in STORES)
        raise BackupError(f"--only: unknown store {', '.join(unknown)}; known: {known}")
    if options.encrypt_key is not None:
        secrets_archive.require(options.encrypt_key)
    begun = time.monotonic()
    created = datetime.now(UTC).replace(microsecond=0)
    stamp = f"{created:%Y%m%dT%H%M%SZ}"
    name = f"ai-finance-backup-{stamp}.tar" + (".gz" if options.gzip else "")
    options.to.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = options.to / f".{name}.partial.d"
    staging.mkdir(mode=0o700)

    def say(text: str) -> None:
        progress(f"{time.monotonic() - begun:6.1f}s {text}")

    ctx = Context(root, project, states, engine, options, staging, stamp, say, sleep)
    target, partial = options.to / name, options.to / f".{name}.partial"
    try:
        chosen = [s for s in STORES if not options.only or s.name in options.only]
        stores = {store.name: _store(ctx, store) for store in chosen}
        left_out = {
            volume: NOT_BACKED_UP.get(volume, "no backup method: add it to finance_stack/stores.py")
            for volume in facts.volumes
            if volume not in {s.volume for s in STORES}
        }
        manifest = {
            "format": archive.FORMAT,
            "format_version": archive.FORMAT_VERSION,
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "stack_version": version,
            "project": project.name,
            "profiles": project.profiles,
            "pins": facts.pins,
            "stores": stores,
            "volumes_left_out": left_out,
            "notes": ctx.notes,
        }
        archive.write(staging, manifest, partial, options.gzip)
        os.chmod(partial, 0o600)
        os.replace(partial, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        partial.unlink(missing_ok=True)
    say(f"archive {target} ({mb(target.stat().st_size)})")
    return target, manifest


def summary(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its file lists, for --json."""
    stores = {}
    for name, store in manifest["stores"].items():
        kept = {k: v for k, v in store.items() if k not in ("files", "dirs", "snapshot")}
        if store["status"] == "backed-up":
            kept["files"] = len(store["files"])
            kept["bytes"] = sum(f["size"] for f in store["files"])
        stores[name] = kept
    head = {k: v for k, v in manifest.items() if k != "stores"}
    return {"archive": str(path), **head, "stores": stores}
