"""monitoring/inventory.yml into frozen dataclasses; impossible rows are rejected here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

INVENTORY = Path(__file__).resolve().parent / "inventory.yml"
_DURATION = re.compile(r"^(\d+)(m|h|d)$")
_SECONDS = {"m": 60, "h": 3600, "d": 86400}
# What a `dashboards:` entry holds. A flow mapping cuts an unquoted title at its commas
# ({title: Hosts, containers and datastores} is title "Hosts" and a key with no value), so the
# keys are checked exactly and no value may be empty.
DASHBOARD_KEYS = ("folder", "title")


class InventoryError(ValueError):
    """The inventory is invalid; the message says which entry and why."""


def seconds(duration: str) -> int:
    """Seconds in a Prometheus duration of one unit (5m, 1h, 30d)."""
    match = _DURATION.match(duration)
    if not match:
        raise InventoryError(f"bad duration {duration!r}: expected e.g. 5m, 1h, 3d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


@dataclass(frozen=True)
class BurnRate:
    """One row of the multi-window, multi-burn-rate table."""

    burn: str
    severity: str
    long: str
    short: str
    factor: float
    for_: str


@dataclass(frozen=True)
class Service:
    """A platform service and its SLO targets."""

    name: str
    team: str
    availability: float
    latency_seconds: float
    latency_objective: float
    error_rate: float


@dataclass(frozen=True)
class Team:
    """A team that owns alerts, and where its pages are mailed."""

    name: str
    email: str

    @property
    def receivers(self) -> tuple[str, str, str]:
        """Its Slack channel, its PagerDuty service and its mailbox, as Alertmanager receivers."""
        return (self.name, f"{self.name}-pagerduty", f"{self.name}-email")


@dataclass(frozen=True)
class Market:
    """A market whose providers' feeds tick only while it is open (`open` None: never closes).
    `open` is a list of Alertmanager time_interval specs, in UTC."""

    name: str
    providers: tuple[str, ...]
    open: tuple[dict[str, Any], ...] | None


@dataclass(frozen=True)
class Inventory:
    """Everything the generators and checks read."""

    runbook_base: str
    grafana_url: str
    teams: dict[str, Team]
    folders: dict[str, str]
    dashboards: dict[str, dict[str, str]]
    slo_window: str
    services: tuple[Service, ...]
    burn_rates: tuple[BurnRate, ...]
    min_request_rate: float
    latency_buckets_seconds: tuple[float, ...] = ()
    markets: tuple[Market, ...] = ()
    market_alerts: tuple[str, ...] = ()

    def dashboard_uids(self) -> set[str]:
        """Every dashboard uid an alert may link to."""
        return set(self.dashboards) | {f"services-{s.name}" for s in self.services}


def _team(name: str, raw: Any) -> Team:
    if not isinstance(raw, dict) or set(raw) != {"email"} or "@" not in str(raw["email"]):
        raise InventoryError(f"team {name}: expected {{email: <address>}}, got {raw!r}")
    return Team(name=name, email=str(raw["email"]))


def _market(name: str, raw: Any) -> Market:
    if (
        not isinstance(raw, dict)
        or not set(raw) <= {"providers", "open"}
        or not raw.get("providers")
    ):
        raise InventoryError(f"market {name}: expected {{providers: [...], open: [...]}}")
    opened = raw.get("open")
    if opened is not None and (not isinstance(opened, list) or not opened):
        raise InventoryError(f"market {name}: open must be a list of time_interval specs")
    return Market(
        name=name,
        providers=tuple(str(p) for p in raw["providers"]),
        open=None if opened is None else tuple(dict(spec) for spec in opened),
    )


def _service(name: str, raw: dict[str, Any], teams: dict[str, Team]) -> Service:
    service = Service(
        name=name,
        team=str(raw["team"]),
        availability=float(raw["availability"]),
        latency_seconds=float(raw["latency_seconds"]),
        latency_objective=float(raw["latency_objective"]),
        error_rate=float(raw["error_rate"]),
    )
    if service.team not in teams:
        raise InventoryError(f"service {name}: unknown team {service.team!r}")
    for field in ("availability", "latency_objective"):
        if not 0 < getattr(service, field) < 1:
            raise InventoryError(f"service {name}: {field} must be between 0 and 1")
    return service


def _dashboards(raw: Any) -> dict[str, dict[str, str]]:
    """The `dashboards:` section: each uid maps to exactly a folder and a title, both non-empty
    strings; every problem is reported, each naming its entry."""
    if not isinstance(raw, dict):
        raise InventoryError(f"dashboards: expected a mapping of uid to entry, got {raw!r}")
    problems = []
    for uid, entry in raw.items():
        if not isinstance(entry, dict):
            problems.append(f"dashboard {uid}: expected {{folder: ..., title: ...}}, got {entry!r}")
            continue
        unknown = sorted(set(map(str, entry)) - set(DASHBOARD_KEYS))
        if unknown:
            shown = ", ".join(f"{key!r}: {entry[key]!r}" for key in unknown)
            problems.append(
                f"dashboard {uid}: unknown keys {shown}; known: {', '.join(DASHBOARD_KEYS)} "
                "(quote a title that has a comma)"
            )
        for key in DASHBOARD_KEYS:
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                problems.append(
                    f"dashboard {uid}: {key} must be a non-empty string, got {entry.get(key)!r}"
                )
    if problems:
        raise InventoryError("\n".join(problems))
    return {str(uid): {key: entry[key] for key in DASHBOARD_KEYS} for uid, entry in raw.items()}


def _folders(raw: Any) -> dict[str, str]:
    """The `folders:` section: each folder id maps to the title Grafana shows."""
    if not isinstance(raw, dict):
        raise InventoryError(f"folders: expected a mapping of id to title, got {raw!r}")
    empty = sorted(
        str(uid) for uid, title in raw.items() if not isinstance(title, str) or not title
    )
    if empty:
        raise InventoryError(f"folders {', '.join(empty)}: the title must be a non-empty string")
    return {str(uid): str(title) for uid, title in raw.items()}


def load(path: Path = INVENTORY) -> Inventory:
    """Read and check the inventory."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    teams = {name: _team(name, team) for name, team in raw["teams"].items()}
    services = tuple(_service(n, s, teams) for n, s in raw["services"].items())
    rates = tuple(
        BurnRate(
            burn=str(r["burn"]),
            severity=str(r["severity"]),
            long=str(r["long"]),
            short=str(r["short"]),
            factor=float(r["factor"]),
            for_=str(r["for"]),
        )
        for r in raw["burn_rates"]
    )
    inventory = Inventory(
        runbook_base=str(raw["runbook_base"]).rstrip("/"),
        grafana_url=str(raw["grafana_url"]).rstrip("/"),
        teams=teams,
        folders=_folders(raw["folders"]),
        dashboards=_dashboards(raw["dashboards"]),
        slo_window=str(raw["slo_window"]),
        services=services,
        burn_rates=rates,
        min_request_rate=float(raw["min_request_rate"]),
        latency_buckets_seconds=tuple(float(b) for b in raw["latency_buckets_seconds"]),
        markets=tuple(_market(n, m) for n, m in (raw.get("markets") or {}).items()),
        market_alerts=tuple(str(a) for a in raw.get("market_alerts") or ()),
    )
    check(inventory)
    return inventory


def check(inventory: Inventory) -> None:
    """Reject rows no alert could ever satisfy, windows in the wrong order, and dashboards in a
    folder the inventory does not declare."""
    for uid, meta in inventory.dashboards.items():
        if meta["folder"] not in inventory.folders:
            raise InventoryError(f"dashboard {uid}: folder {meta['folder']!r} is not in folders")
    for service in inventory.services:
        if service.latency_seconds not in inventory.latency_buckets_seconds:
            bounds = ", ".join(f"{b:g}" for b in inventory.latency_buckets_seconds)
            raise InventoryError(
                f"service {service.name}: latency_seconds {service.latency_seconds:g} is not a "
                f"bucket bound of http_request_duration_seconds ({bounds}); the latency SLI "
                "counts requests at or under a bound, so it would measure nothing"
            )
    providers = [p for market in inventory.markets for p in market.providers]
    if len(providers) != len(set(providers)):
        raise InventoryError(f"markets: a provider is in two markets: {sorted(providers)}")
    for rate in inventory.burn_rates:
        if seconds(rate.short) >= seconds(rate.long):
            raise InventoryError(f"burn {rate.burn}: short window must be shorter than long")
        for service in inventory.services:
            for slo, objective in (
                ("availability", service.availability),
                ("latency", service.latency_objective),
            ):
                # An error ratio cannot exceed 1: such an alert could never fire.
                if rate.factor * (1 - objective) >= 1:
                    raise InventoryError(
                        f"service {service.name} {slo} objective {objective}: burn {rate.burn} "
                        f"needs an error ratio of {rate.factor * (1 - objective):.3g} (> 1), "
                        "so it could never fire; raise the objective or lower the factor"
                    )
