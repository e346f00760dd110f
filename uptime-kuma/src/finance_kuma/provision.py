"""The admin account and the monitors: what the file wants, applied idempotently.

A monitor is ours when it carries the tag managed-by=ai-finance (or, should a run have stopped
between creating a monitor and tagging it, our description marker; the tag is added then). Ours
are created, edited until their fields equal the file's, and removed when the file (or the
profiles that run) no longer has them. Any other monitor was made by hand in Kuma's UI: it is
left alone and reported as unmanaged. No notifier is made: Kuma's alerts are Prometheus' rules
over its metrics, routed by Alertmanager like every other alert.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from uptime_kuma_api import MonitorType, UptimeKumaException

from finance_kuma.client import KumaClient, LoginRefusedError
from finance_kuma.monitors import MonitorSpec

ADMIN_USER = "admin"
TAG_NAME = "managed-by"
TAG_VALUE = "ai-finance"
TAG_COLOR = "#2563EB"
MARKER = "Managed by ai-finance (uptime-kuma/monitors.yml, kuma-setup); edits here are undone."
# Kuma 1.23's answers to a refused login (server/server.js, socket "login"; the rate limiter of
# server/rate-limiter.js).
WRONG_PASSWORD = "Incorrect username or password."
RATE_LIMITED = "Too frequently, try again later."


@dataclass(frozen=True)
class MonitorChanges:
    """What a run did to the monitors, each list by monitor name."""

    created: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # name -> fields changed
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    inactive: list[str] = field(default_factory=list)


def sign_in(client: KumaClient, password: str, password_file: str) -> bool:
    """Create the admin account if Kuma has none, then log in as it; True if it was created.
    A refused login is LoginRefusedError, naming the password's file and what to do."""
    created = False
    if client.need_setup():
        client.setup(ADMIN_USER, password)
        created = True
    try:
        answer = client.login(ADMIN_USER, password)
    except UptimeKumaException as err:
        raise LoginRefusedError(_refusal(str(err), password_file)) from err
    if answer.get("tokenRequired"):
        raise LoginRefusedError(
            f"Uptime Kuma asks for a 2FA token for user {ADMIN_USER}: kuma-setup cannot give one."
            " Turn two-factor authentication off in Kuma (Settings, Security), then re-run:"
            " docker compose run --rm kuma-setup"
        )
    return created


def _refusal(said: str, password_file: str) -> str:
    if said == RATE_LIMITED:
        return f"Uptime Kuma refused the login ({said!r}): wait a minute, then re-run"
    return (
        f"Uptime Kuma refused the login of user {ADMIN_USER} ({said!r}) with the password in"
        f" {password_file}: its account was made with another password (its data volume,"
        f" uptime-kuma-data, is older than that file). Put the account's password into"
        f" {password_file}, or give the account the file's password with"
        " `docker compose exec uptime-kuma npm run reset-password` (paste the file's password"
        " when it asks), then re-run: docker compose run --rm kuma-setup"
    )


def managed(monitor: Mapping[str, Any]) -> bool:
    """True for a monitor this provisioner made."""
    return _tagged(monitor) or str(monitor.get("description") or "").startswith(MARKER)


def _tagged(monitor: Mapping[str, Any]) -> bool:
    return any(
        tag.get("name") == TAG_NAME and tag.get("value") == TAG_VALUE
        for tag in monitor.get("tags") or []
    )


def _tag_id(client: KumaClient) -> int:
    for tag in client.get_tags():
        if tag.get("name") == TAG_NAME:
            return int(tag["id"])
    return int(client.add_tag(name=TAG_NAME, color=TAG_COLOR)["id"])


def kuma_fields(spec: MonitorSpec) -> dict[str, Any]:
    """The spec's fields as uptime-kuma-api takes them, our marker before the description."""
    fields: dict[str, Any] = dict(spec.fields)
    fields["type"] = MonitorType(str(fields["type"]))
    description = str(fields.get("description") or "")
    fields["description"] = f"{MARKER} {description}".strip()
    return fields


def differences(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The fields whose value in Kuma is not the file's, sorted."""
    return sorted(key for key, value in wanted.items() if current.get(key) != value)


def apply_monitors(
    client: KumaClient, specs: Iterable[MonitorSpec], profiles: frozenset[str]
) -> MonitorChanges:
    """Make Kuma's managed monitors those of `specs` that `profiles` run."""
    specs = list(specs)
    wanted = {spec.name: kuma_fields(spec) for spec in specs if spec.active(profiles)}
    changes = MonitorChanges(inactive=sorted(s.name for s in specs if not s.active(profiles)))
    ours: dict[str, dict[str, Any]] = {}
    duplicates = []
    for monitor in sorted(client.get_monitors(), key=lambda m: int(m["id"])):
        if not managed(monitor):
            changes.unmanaged.append(str(monitor["name"]))
        elif monitor["name"] in ours:
            duplicates.append(monitor)  # a second of one name: the oldest stays
        else:
            ours[str(monitor["name"])] = monitor
    tag_id = _tag_id(client)
    for name, fields in sorted(wanted.items()):
        current = ours.get(name)
        if current is None:
            added = client.add_monitor(**fields)
            client.add_monitor_tag(tag_id, int(added["monitorID"]), TAG_VALUE)
            changes.created.append(name)
            continue
        changed = differences(current, fields)
        if changed:
            client.edit_monitor(int(current["id"]), **fields)
        if not _tagged(current):  # made by a run that stopped before tagging it
            client.add_monitor_tag(tag_id, int(current["id"]), TAG_VALUE)
            changed.append("tags")
        if changed:
            changes.changed[name] = changed
        else:
            changes.unchanged.append(name)
    for monitor in [m for n, m in sorted(ours.items()) if n not in wanted] + duplicates:
        client.delete_monitor(int(monitor["id"]))
        changes.removed.append(str(monitor["name"]))
    changes.unmanaged.sort()
    return changes
