"""upgrade.plan: the pins an archive taken before an upgrade records (the running versions),
and which images change."""

from __future__ import annotations

from finance_stack.compose import Container, Project, Service
from finance_stack.upgrade import describe, plan

NEW = {
    "prometheus": "prom/prometheus:v3.6.0",
    "alertmanager": "prom/alertmanager:v0.28.1",
    "grafana": "grafana/grafana:12.0.0",
}


def container(service: str, image: str, state: str = "running") -> Container:
    return Container(service, service, state, "healthy", 0, (), image)


def service(name: str, image: str, built: bool = False) -> Service:
    return Service(name=name, image=image, image_variable=None, built=built)


def test_the_running_versions_are_the_pins_before_and_each_change_is_named() -> None:
    running = [
        container("prometheus", "prom/prometheus:v3.5.0"),
        container("alertmanager", "prom/alertmanager:v0.28.1"),
        container("revenue-exporter", "ai-finance/exporters:local"),
    ]
    chosen = plan(NEW, None, running)
    assert chosen.before == {**NEW, "prometheus": "prom/prometheus:v3.5.0"}
    assert chosen.changes == {"prometheus": ("prom/prometheus:v3.5.0", "prom/prometheus:v3.6.0")}
    assert describe(chosen) == ["prometheus: prom/prometheus:v3.5.0 -> prom/prometheus:v3.6.0"]


def test_a_stopped_service_keeps_the_image_the_last_start_rendered() -> None:
    kept = Project(
        "aif",
        "full",
        {
            "grafana": service("grafana", "grafana/grafana:11.6.0"),
            "stack-tools": service("stack-tools", "ai-finance/stack:local", built=True),
        },
    )
    running = [container("prometheus", NEW["prometheus"]), container("grafana", "x", "exited")]
    chosen = plan(NEW, kept, running)
    assert chosen.before["grafana"] == "grafana/grafana:11.6.0"
    assert "stack-tools" not in chosen.before
    assert chosen.changes == {"grafana": ("grafana/grafana:11.6.0", "grafana/grafana:12.0.0")}


def test_what_runs_wins_over_what_the_last_start_rendered() -> None:
    """A start that failed half-way rendered the new pins, but the old container still runs."""
    kept = Project("aif", "demo", {"prometheus": service("prometheus", NEW["prometheus"])})
    chosen = plan(NEW, kept, [container("prometheus", "prom/prometheus:v3.5.0")])
    assert chosen.before["prometheus"] == "prom/prometheus:v3.5.0"
    assert set(chosen.changes) == {"prometheus"}


def test_a_stack_at_the_pins_changes_no_image_and_says_so() -> None:
    chosen = plan(NEW, None, [container(name, image) for name, image in NEW.items()])
    assert chosen.before == NEW and chosen.changes == {}
    assert describe(chosen)[0].startswith("no image pin changes")
