"""One Uptime Kuma monitor as the generated file holds it, and the hand-written ones of
uptime-kuma/extra-monitors.yml, validated (every problem at once, each with file and entry).

The keys are Uptime Kuma 1.23's own monitor fields (server/model/monitor.js, toJSON; the
`add` and `editMonitor` socket handlers of server/server.js), so the provisioner passes them
through unchanged; `service` and `profiles` are ours and never sent to Kuma.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

# Once a minute, Kuma's default. Kuma retries a failed check 3 times, 20 s apart (its minimum)
# before it reports the monitor down, so a container restart is not an outage; the alert
# UptimeKumaMonitorDown then waits 5 more minutes (prometheus/rules/infrastructure.rules.yml).
INTERVAL_SECONDS = 60
RETRY_INTERVAL_SECONDS = 20
RETRIES = 3
# A health endpoint that takes longer than this is as good as down; Kuma's default (0.8 x the
# interval, 48 s) would hold a check for most of its minute.
TIMEOUT_SECONDS = 10
# Kuma's bounds (src/util.ts: MIN_INTERVAL_SECOND, MAX_INTERVAL_SECOND; the retry interval has
# the same minimum in its UI and in uptime-kuma-api).
MIN_INTERVAL_SECONDS = 20
MAX_INTERVAL_SECONDS = 2073600
TYPES = ("http", "keyword", "port")
REQUIRED = {"http": ("url",), "keyword": ("url", "keyword"), "port": ("hostname", "port")}
OPTIONAL = (
    "description",
    "profiles",
    "interval",
    "retryInterval",
    "maxretries",
    "timeout",
    "accepted_statuscodes",
    "expiryNotification",
)

# The order of a monitor's keys in the generated file.
KEY_ORDER = (
    "name",
    "service",
    "profiles",
    "description",
    "type",
    "url",
    "hostname",
    "port",
    "keyword",
    "accepted_statuscodes",
    "expiryNotification",
    "timeout",
    "interval",
    "retryInterval",
    "maxretries",
)

Monitor = dict[str, object]


class UptimeError(ValueError):
    """The compose file or extra-monitors.yml cannot make a valid monitors file."""


def monitor(
    name: str,
    service: str,
    profiles: Sequence[str],
    type_: str,
    source: str,
    target: str,
    keyword: str | None = None,
    codes: Sequence[str] = ("200-299",),
) -> Monitor:
    """A generated monitor of `target` (HOST:PORT/PATH for HTTP, HOST:PORT for a port check)."""
    entry: Monitor = {
        "name": name,
        "service": service,
        "profiles": list(profiles),
        "description": f"docker-compose.yml service {service} ({source})",
        "type": type_,
    }
    if type_ == "port":
        host, port = target.rsplit(":", 1)
        entry.update(hostname=host, port=int(port))
    else:
        entry.update(url=f"http://{target}", accepted_statuscodes=list(codes))
        if keyword is not None:
            entry["keyword"] = keyword
    return _with_defaults(entry)


def _with_defaults(entry: Monitor) -> Monitor:
    """The shared timings; for HTTP, the timeout and certificate expiry (https URLs only)."""
    defaults: Monitor = {
        "interval": INTERVAL_SECONDS,
        "retryInterval": RETRY_INTERVAL_SECONDS,
        "maxretries": RETRIES,
    }
    if entry["type"] != "port":
        defaults["timeout"] = TIMEOUT_SECONDS
        defaults["accepted_statuscodes"] = ["200-299"]
        defaults["expiryNotification"] = str(entry["url"]).startswith("https://")
    merged = {**defaults, **entry}
    return {key: merged[key] for key in KEY_ORDER if key in merged}


def _problems(where: str, raw: Any) -> list[str]:
    if not isinstance(raw, dict):
        return [f"{where}: expected a mapping, got {raw!r}"]
    type_ = raw.get("type")
    if type_ not in TYPES:
        return [f"{where}: type must be one of {', '.join(TYPES)}, got {type_!r}"]
    allowed = {"name", "type", *REQUIRED[type_], *OPTIONAL}
    problems = [f"{where}: unknown key {key!r}" for key in sorted(set(raw) - allowed)]
    problems += [
        f"{where}: {key} is required for type {type_}"
        for key in REQUIRED[type_]
        if raw.get(key) in (None, "")
    ]
    if not isinstance(raw.get("name"), str) or not raw["name"]:
        problems.append(f"{where}: name must be a non-empty string")
    url = raw.get("url")
    if url is not None and not str(url).startswith(("http://", "https://")):
        problems.append(f"{where}: url must start with http:// or https://, got {url!r}")
    for key, low in (("interval", MIN_INTERVAL_SECONDS), ("retryInterval", MIN_INTERVAL_SECONDS)):
        value = raw.get(key, low)
        if not isinstance(value, int) or not low <= value <= MAX_INTERVAL_SECONDS:
            problems.append(f"{where}: {key} must be {low} to {MAX_INTERVAL_SECONDS} seconds")
    retries = raw.get("maxretries", 0)
    if not isinstance(retries, int) or retries < 0:
        problems.append(f"{where}: maxretries must be a whole number of at least 0")
    return problems


def extra_monitors(path: Path) -> list[Monitor]:
    """The hand-written monitors of `path`, with the generated ones' defaults; none if the file
    is absent. Every problem is reported together in one UptimeError."""
    if not path.exists():
        return []
    shown = f"{path.parent.name}/{path.name}"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise UptimeError(f"{shown}: invalid YAML: {err}") from err
    entries = document.get("monitors") if isinstance(document, dict) else None
    if not isinstance(entries, list) or set(document) != {"monitors"}:
        raise UptimeError(f"{shown}: expected one key, monitors: [a list of monitors]")
    problems = [p for i, raw in enumerate(entries, 1) for p in _problems(f"monitor #{i}", raw)]
    if problems:
        raise UptimeError(f"{shown}: " + "; ".join(problems))
    found = []
    for raw in entries:
        entry: Monitor = {
            "name": raw["name"],
            "service": None,
            "profiles": list(raw.get("profiles") or []),
            "description": raw.get("description") or f"{shown} (hand-written)",
            **{key: value for key, value in raw.items() if key not in ("name", "profiles")},
        }
        found.append(_with_defaults(entry))
    return found
