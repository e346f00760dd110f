"""Health of each component of the running project, from its own endpoint.

Each service says how it is probed in its `ai-finance.health` label (docker-compose.yml), with
the container port; the host port comes from the compose reader, never from a typed number:

  http PORT PATH          GET on the published port answers 2xx
  exporter PORT           /healthz answers and /metrics reports every datastore up
  elasticsearch PORT      /_cluster/health is green or yellow (as user elastic, secret permitting)
  prometheus METRIC       Prometheus holds METRIC and every series of it is 1
  tcp PORT                a datastore, unpublished: its container healthcheck decides (Uptime
                          Kuma connects to the port: uptime-kuma/monitors.yml)

A service without the label, or whose port is not published, is judged by its container
healthcheck; a one-off job by its exit code. One more line, `watchdog`, says how long ago the
always-firing Watchdog last reached its receiver (the dead man's switch), from Alertmanager's
own counters in Prometheus.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from finance_stack.compose import Container, Project, Service

TIMEOUT_SECONDS = 5.0
HEALTH_LABEL = "ai-finance.health"


@dataclass(frozen=True)
class Health:
    """One component's verdict."""

    component: str
    healthy: bool
    detail: str


def health_label(service: Service) -> tuple[str, list[str]]:
    """(kind, arguments) of a service's ai-finance.health label; ("", []) without one."""
    kind, _, rest = service.labels.get(HEALTH_LABEL, "").partition(" ")
    return kind, rest.split()


def base_url(service: Service) -> str | None:
    """The host URL of the container port the health label names; None if the label names no
    port or the port is not published."""
    _, args = health_label(service)
    if not args or not args[0].isdigit():
        return None
    port = service.host_port(int(args[0]))
    return None if port is None else f"http://{port.local_host}:{port.published}"


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def _http(component: str, url: str) -> Health:
    try:
        status, _ = _get(url)
    except (urllib.error.URLError, OSError) as err:
        return Health(component, False, f"{url}: {getattr(err, 'reason', err)}")
    return Health(component, 200 <= status < 300, f"{url} answered {status}")


def _exporter(component: str, base: str) -> Health:
    health = _http(component, f"{base}/healthz")
    if not health.healthy:
        return health
    try:
        _, body = _get(f"{base}/metrics")
    except (urllib.error.URLError, OSError) as err:
        return Health(component, False, f"{base}/metrics: {getattr(err, 'reason', err)}")
    up = {
        line.split('source="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
        for line in body.splitlines()
        if line.startswith("finance_exporter_up{")
    }
    down = sorted(source for source, value in up.items() if float(value) != 1.0)
    if not up:
        return Health(component, False, f"{base}/metrics: no finance_exporter_up yet")
    if down:
        return Health(component, False, f"{base}/metrics: datastore down: {', '.join(down)}")
    return Health(component, True, f"{base}/metrics: serving, {', '.join(sorted(up))} up")


def _elasticsearch(component: str, base: str, secrets: Path) -> Health | None:
    try:
        password = (secrets / "elastic_password").read_text(encoding="utf-8").strip()
    except OSError:
        return None  # not readable by this user: the container healthcheck decides
    url = f"{base}/_cluster/health"
    try:
        status, body = _get(url, ("elastic", password))
    except (urllib.error.URLError, OSError) as err:
        return Health(component, False, f"{url}: {getattr(err, 'reason', err)}")
    color = json.loads(body).get("status", "unknown") if status == 200 else f"HTTP {status}"
    return Health(component, color in ("green", "yellow"), f"{url}: {color}")


def _prometheus(component: str, project: Project, metric: str) -> Health | None:
    prometheus = project.services.get("prometheus")
    base = base_url(prometheus) if prometheus is not None else None
    if base is None:
        return None
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': metric})}"
    try:
        _, body = _get(url)
        result = json.loads(body)["data"]["result"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as err:
        return Health(component, False, f"prometheus {metric}: {err}")
    values = [sample["value"][1] for sample in result]
    healthy = bool(values) and all(value == "1" for value in values)
    return Health(component, healthy, f"prometheus {metric} = {', '.join(values) or 'absent'}")


# Alertmanager re-sends the Watchdog every 5 minutes (alertmanager.yml repeat_interval): two
# intervals without a delivery means the heartbeat receiver is not hearing from us.
WATCHDOG_MAX_AGE_SECONDS = 600.0
WATCHDOG_LOOKBACK_SECONDS = 1800
WATCHDOG_STEP_SECONDS = 15
# Deliveries that succeeded: attempts minus failures, to the watchdog receiver
# (--enable-feature=receiver-name-in-metrics gives the counters their receiver_name).
WATCHDOG_DELIVERED = (
    'sum(alertmanager_notifications_total{receiver_name="watchdog"})'
    ' - (sum(alertmanager_notifications_failed_total{receiver_name="watchdog"}) or vector(0))'
)
ALERTMANAGER_STARTED = 'max(process_start_time_seconds{job="alertmanager"})'


def last_increase(samples: list[tuple[float, float]]) -> float | None:
    """The time of the last sample at which a counter went up (a reset followed by a value
    counts too); None if it never did."""
    found = None
    for (_, before), (at, value) in itertools.pairwise(samples):
        if value > before or (value < before and value > 0):
            found = at
    return found


def _ago(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def watchdog(project: Project, now: float | None = None) -> Health | None:
    """How long ago the Watchdog last reached its receiver; None without Prometheus."""
    prometheus = project.services.get("prometheus")
    base = base_url(prometheus) if prometheus is not None else None
    if base is None or "alertmanager" not in project.services:
        return None
    now = time.time() if now is None else now
    query = urllib.parse.urlencode(
        {
            "query": WATCHDOG_DELIVERED,
            "start": f"{now - WATCHDOG_LOOKBACK_SECONDS:.3f}",
            "end": f"{now:.3f}",
            "step": str(WATCHDOG_STEP_SECONDS),
        }
    )
    try:
        _, body = _get(f"{base}/api/v1/query_range?{query}")
        result = json.loads(body)["data"]["result"]
        samples = [(float(t), float(v)) for t, v in result[0]["values"]] if result else []
        _, started_body = _get(
            f"{base}/api/v1/query?{urllib.parse.urlencode({'query': ALERTMANAGER_STARTED})}"
        )
        started = json.loads(started_body)["data"]["result"]
    except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as err:
        return Health("watchdog", False, f"prometheus: {err}")
    delivered = last_increase(samples)
    if delivered is not None:
        age = now - delivered
        healthy = age <= WATCHDOG_MAX_AGE_SECONDS
        detail = f"last reached its receiver {_ago(age)} ago"
        if not healthy:
            detail += f" (over {_ago(WATCHDOG_MAX_AGE_SECONDS)}: see docs/runbooks/Watchdog.md)"
        return Health("watchdog", healthy, detail)
    uptime = now - float(started[0]["value"][1]) if started else None
    if uptime is not None and uptime < 2 * 60:
        return Health("watchdog", True, f"no delivery yet (Alertmanager up {_ago(uptime)})")
    minutes = WATCHDOG_LOOKBACK_SECONDS // 60
    return Health(
        "watchdog",
        False,
        f"no delivery to its receiver in the last {minutes} minutes: docs/runbooks/Watchdog.md",
    )


def probe(project: Project, service: Service, secrets: Path) -> Health | None:
    """The service's own health, per its label; None when only its container can tell."""
    kind, args = health_label(service)
    if kind == "prometheus" and args:
        return _prometheus(service.name, project, args[0])
    base = base_url(service) if kind in ("http", "exporter", "elasticsearch") else None
    if base is None:
        return None
    if kind == "http":
        return _http(service.name, base + (args[1] if len(args) > 1 else "/"))
    if kind == "exporter":
        return _exporter(service.name, base)
    return _elasticsearch(service.name, base, secrets)


def _stopped(service: Service, container: Container | None) -> Health:
    if container is None:
        return Health(
            service.name, False, "container missing: ./start-monitoring.sh start creates it"
        )
    if container.state == "exited":
        # `docker kill` or a crash the restart policy gave up on: Docker treats a kill as a
        # manual stop, so the container stays down until the next start.
        return Health(
            service.name,
            False,
            f"container exited (code {container.exit_code}): ./start-monitoring.sh logs"
            f" {service.name}, then ./start-monitoring.sh start brings it back",
        )
    return Health(service.name, False, f"container {container.state}")


def check(project: Project, containers: list[Container], secrets: Path) -> list[Health]:
    """A verdict for every service of the project (and any other container of it)."""
    by_service = {c.service: c for c in containers}
    results = []
    for name in sorted(project.services):
        service = project.services[name]
        container = by_service.get(name)
        if service.one_off:
            if container is None:
                results.append(Health(name, False, "one-off job: never ran"))
            else:
                done = container.state == "exited" and container.exit_code == 0
                results.append(
                    Health(
                        name, done, f"one-off job: {container.state} (exit {container.exit_code})"
                    )
                )
            continue
        if container is None or container.state != "running":
            results.append(_stopped(service, container))
            continue
        verdict = probe(project, service, secrets)
        if verdict is None:
            health = container.health or "none"
            verdict = Health(
                name, container.health == "healthy", f"container healthcheck: {health}"
            )
        results.append(verdict)
    running = {c.service for c in containers if c.state == "running"}
    if {"prometheus", "alertmanager"} <= running:
        beat = watchdog(project)
        if beat is not None:
            results.append(beat)
    return results


def render(results: list[Health], as_json: bool) -> str:
    """Lines for a person, or a JSON array of {component, healthy, detail}."""
    if as_json:
        return json.dumps([r.__dict__ for r in results], indent=2) + "\n"
    return "".join(
        f"{'ok' if r.healthy else 'FAIL':<5} {r.component:<22} {r.detail}\n" for r in results
    )
