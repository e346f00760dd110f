"""The `drill` step (drill_command.py): --list and --json name every scenario and the alert it
expects, an unknown scenario is a usage error that lists them, the synthetic drill is still
the default, and a scenario that fails on the real Alertmanager and alert sink reports the step
and turns its fault off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from finance_stack import state
from finance_stack.alert_sink import AlertSinkServer
from finance_stack.compose import Port, Project, Service
from finance_stack.drill_command import cmd_drill
from finance_stack.scenarios import BY_NAME, PLATFORM_CONTAINER, SCENARIOS
from support.alertmanager import running_alertmanager
from support.servers import serving_alert_sink

NAMES = ["synthetic", *BY_NAME]


def drill(root: Path, *args: str) -> int:
    return cmd_drill(["--root", str(root), "--profiles", "demo", "--timeout", "20", *args])


def keep_project(root: Path, alertmanager_port: int, sink_port: int, demo: bool = True) -> None:
    """The project `start` would have kept: Alertmanager and the sink on these ports."""

    def service(name: str, label: str, target: int, published: int) -> Service:
        port = Port(target, published, "127.0.0.1", "X_PORT", None)
        labels = {"ai-finance.health": label}
        return Service(name, "i", None, False, labels, (port,), restart="unless-stopped")

    services = {
        "alertmanager": service("alertmanager", "http 9093 /-/healthy", 9093, alertmanager_port),
        "alert-sink": service("alert-sink", "http 9095 /healthz", 9095, sink_port),
    }
    if demo:
        services[PLATFORM_CONTAINER] = Service(PLATFORM_CONTAINER, "d", None, True)
    state.write(root, state.PROJECT_FILE, Project("t", "demo", services).to_json())


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Path, AlertSinkServer]]:
    with serving_alert_sink() as sink:
        port = sink.server_address[1]
        with running_alertmanager(tmp_path, f"http://127.0.0.1:{port}") as url:
            root = tmp_path / "root"
            root.mkdir()
            keep_project(root, int(url.rsplit(":", 1)[1]), port)
            yield root, sink


def test_list_names_every_scenario_with_the_alert_it_expects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drill(tmp_path, "--list") == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if not line.startswith(" ")]
    assert [line.split()[0] for line in heads] == NAMES
    for scenario in SCENARIOS:
        (head,) = [line for line in heads if line.split()[0] == scenario.name]
        assert head.split()[1].startswith(f"{scenario.alert}{{")
        assert head.endswith(f"-> {scenario.receiver}")
    assert (
        '  SLOErrorBudgetBurn{service="payment",team="payments",severity="critical",'
        'slo="availability",burn="fast"} -> payments'
    ) in out


def test_list_json_gives_each_scenarios_fault_alert_labels_receiver_and_waits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drill(tmp_path, "--list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == NAMES
    assert rows[0]["alert"] == "MonitoringDrill" and rows[0]["receiver"] == "drill"
    assert rows[0]["deliver_timeout_seconds"] == 20
    assert rows[1:] == [scenario.listing() for scenario in SCENARIOS]
    feed = next(row for row in rows if row["name"] == "market-data-feed-stalled")
    assert feed["fault"] == "market-data feed_stalled=True"
    assert feed["labels"]["provider"] == "binance" and feed["receiver"] == "trading"


def test_an_unknown_scenario_is_a_usage_error_that_lists_the_scenarios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert drill(tmp_path, "payment-down") == 2
    err = capsys.readouterr().err
    assert f"[x] unknown drill scenario: payment-down; the scenarios are: {', '.join(NAMES)}" in err
    assert "./start-monitoring.sh drill --list" in err


def test_without_a_scenario_the_synthetic_drill_runs_as_before(
    stack: tuple[Path, AlertSinkServer], capsys: pytest.CaptureFixture[str]
) -> None:
    root, sink = stack
    for args in ((), ("synthetic",)):
        assert drill(root, *args, "--json") == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["ok"] is True and summary["path"] == "/webhook/drill"
    assert len(sink.log.list(receiver="drill")) == 4  # two drills, each fired and resolved


def test_a_scenario_needs_the_demo_platform(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keep_project(tmp_path, 1, 2, demo=False)
    assert drill(tmp_path, "payment-errors") == 1
    assert "drill payment-errors breaks the demo platform, which profiles demo do not run" in (
        capsys.readouterr().err
    )


def test_a_failed_scenario_reports_its_step_and_turns_the_fault_off(
    stack: tuple[Path, AlertSinkServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = stack
    monkeypatch.setenv("PATH", str(root))  # no docker: the fault cannot be turned on
    assert drill(root, "payment-provider-down", "--json") == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["ok"], summary["scenario"], summary["step"]) == (
        False,
        "payment-provider-down",
        "on",
    )
    assert summary["error"].startswith("the fault could not be turned on: docker not found")
    assert [step["step"] for step in summary["steps"]] == ["quiet", "off"]
    assert summary["steps"][-1]["detail"] == (
        "fault off after the failure: payment's knobs were never changed"
    )
    assert "[x] on: the fault could not be turned on: docker not found" in captured.err
