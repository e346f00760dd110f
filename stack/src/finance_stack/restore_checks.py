"""After a restore: what the manifest recorded of each store, read again from its service."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from finance_stack import captures
from finance_stack.compose import Project
from finance_stack.health import base_url
from finance_stack.stores import ALERTMANAGER_RETENTION_SECONDS, Store


@dataclass(frozen=True)
class Check:
    """One thing checked after the restore."""

    store: str
    ok: bool
    detail: str


def _check_prometheus(recorded: dict[str, Any], base: str) -> Check:
    want = recorded["counts"]
    got = captures.prometheus_counts(base, want["start"], want["end"])
    same = (got.series, got.series_sha256, got.samples) == (
        want["series"],
        want["series_sha256"],
        want["samples"],
    )
    detail = f"{got.series} series, {got.samples} samples over ({got.start}, {got.end}]"
    if not same:
        detail += f"; the archive has {want['series']} series, {want['samples']} samples"
    return Check("prometheus", same, detail)


def _check_alertmanager(recorded: dict[str, Any], base: str) -> Check:
    # Alertmanager drops a silence its retention after the silence ended: not a loss.
    now = time.time()
    want = sorted(
        s["id"]
        for s in recorded["silences"]
        if _epoch(s["endsAt"]) + ALERTMANAGER_RETENTION_SECONDS > now
    )
    got = [s["id"] for s in captures.alertmanager_silences(base)]
    detail = f"{len(got)} silences, the archive's ids"
    if got != want:
        detail = f"silences {got}, the archive has {want}"
    return Check("alertmanager", got == want, detail)


def _check_jaeger(recorded: dict[str, Any], base: str) -> Check:
    missing = sorted(set(recorded["services"]) - set(captures.jaeger_services(base)))
    detail = f"{len(recorded['services'])} services with traces"
    return Check("jaeger", not missing, detail + (f"; missing: {missing}" if missing else ""))


def check(
    recorded: dict[str, Any], store: Store, project: Project, restored: dict[str, Any]
) -> Check:
    """What the manifest recorded of `store`, read again from its service."""
    entry = project.services.get(store.service or "")
    base = base_url(entry) if entry is not None else None
    if base is not None and store.name == "prometheus" and "counts" in recorded:
        return _check_prometheus(recorded, base)
    if base is not None and store.name == "alertmanager" and "silences" in recorded:
        return _check_alertmanager(recorded, base)
    if base is not None and store.name == "jaeger" and "services" in recorded:
        return _check_jaeger(recorded, base)
    if store.name == "elasticsearch":
        want, got = recorded["counts"]["indices"], restored.get("elasticsearch", {})
        detail = f"{len(got)} indices, {sum(got.values())} documents"
        return Check(
            store.name, got == want, detail + ("" if got == want else f"; archive: {want}")
        )
    counted = ", ".join(f"{v} {k}" for k, v in recorded.get("counts", {}).items())
    detail = f"{len(recorded['files'])} files restored byte for byte"
    return Check(store.name, True, detail + (f" ({counted})" if counted else ""))


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
