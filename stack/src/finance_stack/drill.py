"""`drill`: prove the alerting path end to end on the running stack.

Posts a synthetic alert (MonitoringDrill, severity warning, team sre, a unique drill_id) to
Alertmanager's API on its published port, checks it is routed to the drill receiver, waits
until the alert sink has received it, resolves it and waits for the resolution too. Each step
prints a [+] line with its time; `--json` prints a summary object. Drills never reach Slack or
PagerDuty: their receiver is always the alert sink (docs/alerting.md).
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from finance_stack import health
from finance_stack.compose import Project

RECEIVER = "drill"
REQUEST_TIMEOUT_SECONDS = 5.0


class DrillError(RuntimeError):
    """A step failed: `step` names it, the message says what to look at."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class Result:
    """What a successful drill measured."""

    drill_id: str
    receiver: str
    path: str
    delivered_after_seconds: float
    resolved_after_seconds: float


def base_url(project: Project, service: str) -> str:
    """The published base URL of a service's health-label port."""
    entry = project.services.get(service)
    if entry is None:
        raise DrillError("post", f"{service} is not part of the running profiles")
    url = health.base_url(entry)
    if url is None:
        raise DrillError("post", f"{service} has no published port")
    return url


def alert(drill_id: str, started: datetime, resolved: bool) -> list[dict[str, object]]:
    """The drill alert as Alertmanager's API takes it: firing for 10 minutes, or resolved now."""
    now = datetime.now(UTC)
    return [
        {
            "labels": {
                "alertname": "MonitoringDrill",
                "severity": "warning",
                "team": "sre",
                "category": "meta",
                "service": "alertmanager",
                "drill_id": drill_id,
            },
            "annotations": {
                "summary": f"monitoring drill {drill_id}",
                "description": (
                    "A synthetic alert from ./start-monitoring.sh drill; nothing is wrong."
                ),
            },
            "startsAt": started.isoformat(),
            "endsAt": (now if resolved else now + timedelta(minutes=10)).isoformat(),
            "generatorURL": "http://localhost/start-monitoring.sh/drill",
        }
    ]


def request_json(url: str, body: object | None = None) -> object:
    """GET `url`, or POST `body` as JSON; the JSON answer (None if empty)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(url, data, headers)
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip() else None


def why(err: Exception) -> str:
    """What a failed request says about the server, in a few words."""
    if isinstance(err, urllib.error.HTTPError):
        return f"answered HTTP {err.code}"
    reason = getattr(err, "reason", err)
    if isinstance(reason, TimeoutError):
        return "timed out"
    return f"is not answering ({reason})"


def received(listing: object, drill_id: str, status: str) -> str | None:
    """The alert-sink path that received the drill in `status`, if any."""
    for entry in listing if isinstance(listing, list) else []:
        body = entry.get("body") if isinstance(entry, dict) else None
        alerts = body.get("alerts", []) if isinstance(body, dict) else []
        if any(
            a.get("status") == status and a.get("labels", {}).get("drill_id") == drill_id
            for a in alerts
        ):
            return str(entry["path"])
    return None


def run(
    project: Project,
    timeout_seconds: float,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Result:
    """Every step in order; DrillError names the step that failed."""
    am = base_url(project, "alertmanager")
    sink = base_url(project, "alert-sink")
    started = datetime.now(UTC)
    drill_id = f"drill-{started:%Y%m%dT%H%M%SZ}-{random.randrange(100000)}"
    try:
        request_json(f"{am}/api/v2/alerts", alert(drill_id, started, resolved=False))
    except (urllib.error.URLError, OSError) as err:
        raise DrillError(
            "post",
            f"Alertmanager at {am} {why(err)}: is the stack running? ./start-monitoring.sh status",
        ) from None
    progress(f"posted MonitoringDrill (drill_id={drill_id}) to Alertmanager at {am}")
    query = urllib.parse.urlencode({"filter": f'drill_id="{drill_id}"'})
    listed = request_json(f"{am}/api/v2/alerts?{query}")
    receivers = sorted(
        {r["name"] for a in listed if isinstance(a, dict) for r in a.get("receivers", [])}
        if isinstance(listed, list)
        else set()
    )
    if receivers != [RECEIVER]:
        raise DrillError(
            "route",
            f"routed to {','.join(receivers) or 'nothing'}, expected {RECEIVER}: check the"
            " MonitoringDrill route in alertmanager/alertmanager.yml",
        )
    progress(f"routed to {RECEIVER}")

    def wait_for(status: str, step: str) -> tuple[str, float]:
        begun = clock()
        last_error = ""
        while clock() - begun < timeout_seconds:
            try:
                listing = request_json(f"{sink}/notifications?receiver={RECEIVER}")
                path = received(listing, drill_id, status)
                if path:
                    return path, clock() - begun
            except (urllib.error.URLError, OSError, ValueError) as err:
                last_error = f" (alert sink at {sink} {why(err)})"
            sleep(1.0)
        raise DrillError(
            step,
            f"the drill was not {status if status == 'resolved' else 'delivered'} to the alert"
            f" sink at {sink} within {timeout_seconds:.0f}s{last_error}: ./start-monitoring.sh"
            " health, then ./start-monitoring.sh logs alertmanager",
        )

    path, delivered = wait_for("firing", "deliver")
    progress(f"delivered to alert-sink ({path}) after {delivered:.0f}s")
    try:
        request_json(f"{am}/api/v2/alerts", alert(drill_id, started, resolved=True))
    except (urllib.error.URLError, OSError) as err:
        raise DrillError("resolve", f"Alertmanager at {am} {why(err)} when resolving") from None
    progress("resolution posted (endsAt now)")
    _, resolved = wait_for("resolved", "resolve")
    progress(f"resolved: alert-sink ({path}) got the resolution after {resolved:.0f}s")
    return Result(drill_id, RECEIVER, path, round(delivered, 1), round(resolved, 1))
