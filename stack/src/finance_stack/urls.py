"""The lines `start` prints when the stack is up: where each UI and API is, and the credentials."""

from __future__ import annotations

from finance_stack.compose import Project
from finance_stack.health import health_label

# What a person opens, in the order they are printed; the ports come from the project.
TITLES = {
    "prometheus": "Prometheus",
    "alertmanager": "Alertmanager",
    "alert-sink": "Alert sink",
    "grafana": "Grafana",
    "kibana": "Kibana",
    "elasticsearch": "Elasticsearch",
    "jaeger": "Jaeger",
    "uptime-kuma": "Uptime Kuma",
    "revenue-exporter": "Revenue",
    "signals-exporter": "Signals",
    "portfolio-exporter": "Portfolio",
}
NOTES = {
    "grafana": "user admin, password in secrets/grafana_admin_password",
    "kibana": "user elastic, password in secrets/elastic_password",
    "uptime-kuma": "user admin, password in secrets/kuma_admin_password",
    "alert-sink": "GET /notifications: what Alertmanager sent",
}
EXPORTER_PATH = "/metrics"


def lines(project: Project) -> list[str]:
    """One line per published UI or API of the project."""
    result = [f"AI Finance monitoring is up (profiles: {project.profiles})", ""]
    for name, title in TITLES.items():
        service = project.services.get(name)
        if service is None:
            continue
        kind, args = health_label(service)
        port = service.host_port(int(args[0])) if args and args[0].isdigit() else None
        if port is None:
            continue
        host = "localhost" if port.host_ip in ("127.0.0.1", "0.0.0.0", "") else port.host_ip
        path = EXPORTER_PATH if kind == "exporter" else ""
        note = f"  ({NOTES[name]})" if name in NOTES else ""
        result.append(f"  {title:<14} http://{host}:{port.published}{path}{note}")
    if "demo-platform" in project.services:
        result.append(f"  {'Demo platform':<14} internal: Prometheus job platform, under load")
    result += [
        "",
        "Credentials: secrets/ (mode 0600; sudo may be needed to read them).",
        "Health: ./start-monitoring.sh health    Logs: ./start-monitoring.sh logs [SERVICE]",
    ]
    return result
