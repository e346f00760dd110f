"""drill against the pinned Alertmanager with the repository's config and the real alert sink:
delivered and resolved, and each failing step named."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from finance_stack import drill
from finance_stack.alert_sink import AlertSinkServer
from finance_stack.compose import Port, Project, Service
from support.alertmanager import running_alertmanager
from support.servers import free_port, serving_alert_sink


def project(alertmanager_port: int, sink_port: int) -> Project:
    def service(name: str, label: str, target: int, published: int) -> Service:
        return Service(
            name,
            "i",
            None,
            False,
            labels={"ai-finance.health": label},
            ports=(Port(target, published, "127.0.0.1", "X_PORT", None),),
            restart="unless-stopped",
        )

    return Project(
        "t",
        "",
        {
            "alertmanager": service(
                "alertmanager", "http 9093 /-/healthy", 9093, alertmanager_port
            ),
            "alert-sink": service("alert-sink", "http 9095 /healthz", 9095, sink_port),
        },
    )


@pytest.fixture
def sink() -> Iterator[AlertSinkServer]:
    with serving_alert_sink() as server:
        yield server


def test_the_drill_is_delivered_to_the_sink_and_resolved(
    tmp_path: Path, sink: AlertSinkServer
) -> None:
    sink_port = sink.server_address[1]
    with running_alertmanager(tmp_path, f"http://127.0.0.1:{sink_port}") as url:
        lines: list[str] = []
        result = drill.run(project(int(url.rsplit(":", 1)[1]), sink_port), 30, lines.append)
    assert result.receiver == "drill" and result.path == "/webhook/drill"
    assert re.fullmatch(r"drill-\d{8}T\d{6}Z-\d+", result.drill_id)
    assert [re.sub(r"\d+s$", "Ns", line.split(" (drill_id")[0]) for line in lines] == [
        "posted MonitoringDrill",
        "routed to drill",
        "delivered to alert-sink (/webhook/drill) after Ns",
        "resolution posted (endsAt now)",
        "resolved: alert-sink (/webhook/drill) got the resolution after Ns",
    ]
    states = [
        alert["status"]
        for entry in sink.log.list()
        for alert in entry.body["alerts"]  # type: ignore[index]
        if alert["labels"]["drill_id"] == result.drill_id
    ]
    assert states == ["firing", "resolved"]


def test_no_alertmanager_fails_the_post_step_saying_what_to_check(sink: AlertSinkServer) -> None:
    with pytest.raises(drill.DrillError) as raised:
        drill.run(project(free_port(), sink.server_address[1]), 5, lambda line: None)
    assert raised.value.step == "post"
    assert "is the stack running? ./start-monitoring.sh status" in str(raised.value)


def test_a_sink_that_never_receives_fails_the_deliver_step(tmp_path: Path) -> None:
    # Alertmanager sends to a port where nothing listens; the drill asks a sink that is up.
    with (
        serving_alert_sink() as other,
        running_alertmanager(tmp_path, f"http://127.0.0.1:{free_port()}") as url,
    ):
        now = [0.0]
        with pytest.raises(drill.DrillError) as raised:
            drill.run(
                project(int(url.rsplit(":", 1)[1]), other.server_address[1]),
                3,
                lambda line: None,
                clock=lambda: now[0],
                sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
            )
    assert raised.value.step == "deliver"
    assert "was not delivered to the alert sink" in str(raised.value)
    assert "within 3s" in str(raised.value)
