"""The lines start prints when the stack is up: the reader's ports, never typed ones."""

from __future__ import annotations

from finance_stack.compose import Port, Project, Service
from finance_stack.urls import lines


def test_urls_use_the_published_ports_and_skip_what_does_not_run() -> None:
    grafana = Service(
        "grafana",
        "g",
        None,
        False,
        labels={"ai-finance.health": "http 3000 /api/health"},
        ports=(Port(3000, 3999, "127.0.0.1", "GRAFANA_PORT", "3001"),),
    )
    exporter = Service(
        "revenue-exporter",
        "e",
        None,
        True,
        labels={"ai-finance.health": "exporter 9101"},
        ports=(Port(9101, 19101, "10.0.0.5", "REVENUE_EXPORTER_PORT", "9101"),),
    )
    text = lines(Project("t", "dashboards", {"grafana": grafana, "revenue-exporter": exporter}))
    assert text[0] == "AI Finance monitoring is up (profiles: dashboards)"
    assert (
        "  Grafana        http://localhost:3999"
        "  (user admin, password in secrets/grafana_admin_password)" in text
    )
    assert "  Revenue        http://10.0.0.5:19101/metrics" in text
    assert not any("Prometheus" in line or "Kibana" in line for line in text)
