"""Health of each component, from its own endpoint (start-monitoring.sh health).

Published services are probed over HTTP on their host port; the business exporters must also
report every datastore up; internal services are judged by their container healthcheck, and the
one without one (redis-exporter, a FROM-scratch image) by Prometheus' own `up` for its job.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

TIMEOUT_SECONDS = 5.0
ONE_SHOT = {"secrets-init", "demo-setup", "elasticsearch-setup"}

# service -> (port variable, default port, path)
HTTP_PROBES = {
    "prometheus": ("PROMETHEUS_PORT", 9090, "/-/healthy"),
    "alertmanager": ("ALERTMANAGER_PORT", 9093, "/-/healthy"),
    "grafana": ("GRAFANA_PORT", 3001, "/api/health"),
    "kibana": ("KIBANA_PORT", 5601, "/api/status"),
    "jaeger": ("JAEGER_UI_PORT", 16686, "/"),
    "uptime-kuma": ("UPTIME_KUMA_PORT", 3002, "/"),
}
EXPORTER_PROBES = {
    "revenue-exporter": ("REVENUE_EXPORTER_PORT", 9101),
    "signals-exporter": ("SIGNALS_EXPORTER_PORT", 9102),
    "portfolio-exporter": ("PORTFOLIO_EXPORTER_PORT", 9103),
}
# service -> the metric Prometheus holds only while that service scrapes its target well.
PROMETHEUS_CHECKS = {"redis-exporter": "redis_up"}


@dataclass(frozen=True)
class Health:
    """One component's verdict."""

    component: str
    healthy: bool
    detail: str


class Settings:
    """Ports and addresses from the environment, then .env, then the defaults."""

    def __init__(self, root: Path, bind_address: str) -> None:
        self.values: dict[str, str] = {}
        env_file = root / ".env"
        if env_file.exists():
            for line in env_file.read_text(encoding="utf-8").splitlines():
                name, sep, value = line.partition("=")
                if sep and not name.startswith("#"):
                    self.values[name.strip()] = value.strip().strip('"')
        self.values.update(os.environ)
        self.host = "127.0.0.1" if bind_address in ("0.0.0.0", "") else bind_address

    def url(self, variable: str, default: int, path: str) -> str:
        """The host URL of a published endpoint."""
        return f"http://{self.host}:{self.values.get(variable) or default}{path}"


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, ""


def _probe_http(component: str, url: str) -> Health:
    try:
        status, _ = _get(url)
    except (urllib.error.URLError, OSError) as err:
        return Health(component, False, f"{url}: {getattr(err, 'reason', err)}")
    return Health(component, 200 <= status < 300, f"{url} answered {status}")


def _probe_exporter(component: str, settings: Settings, variable: str, port: int) -> Health:
    health = _probe_http(component, settings.url(variable, port, "/healthz"))
    if not health.healthy:
        return health
    url = settings.url(variable, port, "/metrics")
    _, body = _get(url)
    up = {
        line.split('source="')[1].split('"')[0]: line.rsplit(" ", 1)[1]
        for line in body.splitlines()
        if line.startswith("finance_exporter_up{")
    }
    down = sorted(source for source, value in up.items() if float(value) != 1.0)
    if not up:
        return Health(component, False, f"{url}: no finance_exporter_up yet")
    if down:
        return Health(component, False, f"{url}: datastore down: {', '.join(down)}")
    return Health(component, True, f"{url}: serving, {', '.join(sorted(up))} up")


def _probe_elasticsearch(settings: Settings, secrets: Path) -> Health | None:
    try:
        password = (secrets / "elastic_password").read_text(encoding="utf-8").strip()
    except OSError:
        return None  # not readable by this user: the container healthcheck decides
    url = settings.url("ELASTICSEARCH_PORT", 9200, "/_cluster/health")
    try:
        status, body = _get(url, ("elastic", password))
    except (urllib.error.URLError, OSError) as err:
        return Health("elasticsearch", False, f"{url}: {getattr(err, 'reason', err)}")
    color = json.loads(body).get("status", "unknown") if status == 200 else f"HTTP {status}"
    return Health("elasticsearch", color in ("green", "yellow"), f"{url}: {color}")


def _probe_prometheus(component: str, settings: Settings, metric: str) -> Health:
    query = urllib.parse.urlencode({"query": metric})
    url = settings.url("PROMETHEUS_PORT", 9090, f"/api/v1/query?{query}")
    try:
        _, body = _get(url)
        result = json.loads(body)["data"]["result"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as err:
        return Health(component, False, f"prometheus {metric}: {err}")
    values = [sample["value"][1] for sample in result]
    healthy = bool(values) and all(value == "1" for value in values)
    return Health(component, healthy, f"prometheus {metric} = {', '.join(values) or 'absent'}")


def check(
    expected: list[str], states: dict[str, tuple[str, str, str]], settings: Settings, secrets: Path
) -> list[Health]:
    """Probe every expected service; a service without a running container is unhealthy."""
    results = []
    for service in sorted(set(expected) | set(states)):
        state, container_health, exit_code = states.get(service, ("missing", "-", "0"))
        if service in ONE_SHOT:
            done = state == "exited" and exit_code == "0"
            results.append(Health(service, done, f"one-off job: {state} (exit {exit_code})"))
            continue
        if state != "running":
            results.append(Health(service, False, f"container {state}"))
            continue
        probe: Health | None = None
        if service in HTTP_PROBES:
            variable, port, path = HTTP_PROBES[service]
            probe = _probe_http(service, settings.url(variable, port, path))
        elif service in EXPORTER_PROBES:
            probe = _probe_exporter(service, settings, *EXPORTER_PROBES[service])
        elif service == "elasticsearch":
            probe = _probe_elasticsearch(settings, secrets)
        elif service in PROMETHEUS_CHECKS:
            probe = _probe_prometheus(service, settings, PROMETHEUS_CHECKS[service])
        if probe is None:
            probe = Health(
                service, container_health == "healthy", f"container healthcheck: {container_health}"
            )
        results.append(probe)
    return results


def main(argv: list[str]) -> int:
    """Print one line (or one JSON object) per component; exit 1 if any is unhealthy."""
    parser = argparse.ArgumentParser(prog="monitoring.health")
    parser.add_argument("--profiles", default="")
    parser.add_argument("--bind-address", default="127.0.0.1")
    parser.add_argument("--secrets", type=Path, default=Path("secrets"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    states = {}
    for line in os.environ.get("STATES", "").splitlines():
        service, state, container_health, exit_code = line.split()
        states[service] = (state, container_health, exit_code)
    expected = os.environ.get("EXPECTED", "").split()
    root = Path(__file__).resolve().parents[1]
    results = check(expected, states, Settings(root, args.bind_address), args.secrets)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for result in results:
            print(f"{'ok' if result.healthy else 'FAIL':<5} {result.component:<20} {result.detail}")
    return 0 if results and all(r.healthy for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
