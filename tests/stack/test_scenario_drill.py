"""`drill SCENARIO`'s steps (scenario_drill.py) against the pinned Alertmanager with the
repository's config and the real alert sink. The fault control stands in for the platform and
Prometheus together: turning a fault on posts the scenario's alert as the rule would raise it,
turning it off resolves it. Every failing step is named, and the fault is off again after it."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finance_stack.alert_match import notified
from finance_stack.alert_sink import AlertSinkServer
from finance_stack.fault_control import FaultControlError
from finance_stack.scenario_drill import ScenarioDrillError, run_scenario
from finance_stack.scenarios import BY_NAME, Fault, Scenario
from support.alertmanager import running_alertmanager
from support.rules import full_labels, rule_of
from support.servers import free_port, serving_alert_sink

STEPS = ["quiet", "on", "fire", "deliver", "off", "resolve"]


def post(alertmanager: str, scenario: Scenario, ends_in: timedelta) -> None:
    """The scenario's alert as Prometheus sends it: its labels and annotations, an end time."""
    rule = rule_of(scenario)
    now = datetime.now(UTC)
    alert = {
        "labels": full_labels(scenario),
        "annotations": {k: str(v) for k, v in rule["annotations"].items()},
        "startsAt": (now - timedelta(minutes=1)).isoformat(),
        "endsAt": (now + ends_in).isoformat(),
    }
    request = urllib.request.Request(
        f"{alertmanager}/api/v2/alerts",
        json.dumps([alert]).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@dataclass
class Rule:
    """The fault control of these tests: on raises the scenario's alert, off resolves it, each
    as configured; every call is recorded."""

    alertmanager: str
    raises_alert: bool = True
    on_error: str | None = None
    off_error: str | None = None
    calls: list[str] = field(default_factory=list)
    scenario: Scenario = BY_NAME["trading-latency"]

    def turn_on(self, fault: Fault) -> str:
        self.calls.append(f"on {fault.service}")
        if self.on_error:
            raise FaultControlError(self.on_error)
        if self.raises_alert:
            post(self.alertmanager, self.scenario, timedelta(minutes=10))
        return "alert raised"

    def turn_off(self, fault: Fault) -> str:
        self.calls.append(f"off {fault.service}")
        if self.off_error:
            raise FaultControlError(self.off_error)
        if self.raises_alert:
            post(self.alertmanager, self.scenario, timedelta(seconds=-1))
        return "alert resolved"


@dataclass
class FakeTime:
    """A clock that each sleep moves on (and that really sleeps a little, so the servers work)."""

    now: float = 0.0
    interrupt_after: float | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.interrupt_after is not None and self.now >= self.interrupt_after:
            raise KeyboardInterrupt
        time.sleep(0.02)
        self.now += seconds


@pytest.fixture
def sink() -> Iterator[AlertSinkServer]:
    with serving_alert_sink() as server:
        yield server


@pytest.fixture
def alertmanager(tmp_path: Path, sink: AlertSinkServer) -> Iterator[str]:
    with running_alertmanager(tmp_path, f"http://127.0.0.1:{sink.server_address[1]}") as url:
        yield url


def sink_url(sink: AlertSinkServer) -> str:
    return f"http://127.0.0.1:{sink.server_address[1]}"


def drill(
    scenario: Scenario,
    alertmanager: str,
    sink: str,
    rule: Rule,
    fake: FakeTime | None = None,
    lines: list[str] | None = None,
) -> Callable[[], object]:
    rule.scenario = scenario
    timing: dict[str, object] = (
        {"clock": fake.clock, "sleep": fake.sleep} if fake else {"poll_seconds": 0.2}
    )

    def go() -> object:
        return run_scenario(
            scenario,
            alertmanager,
            sink,
            rule,
            (lines if lines is not None else []).append,
            **timing,  # type: ignore[arg-type]
        )

    return go


@pytest.mark.parametrize(
    "name",
    ["trading-latency", "api-gateway-errors", "market-data-feed-stalled", "platform-killed"],
)
def test_a_scenario_is_followed_from_the_fault_to_its_receiver_and_back(
    name: str, alertmanager: str, sink: AlertSinkServer
) -> None:
    scenario = BY_NAME[name]
    rule, lines = Rule(alertmanager), []
    result = drill(scenario, alertmanager, sink_url(sink), rule, lines=lines)()
    assert rule.calls == [f"on {scenario.fault.service}", f"off {scenario.fault.service}"]
    assert [step.step for step in result.steps] == STEPS  # type: ignore[attr-defined]
    assert (result.receiver, result.path) == (scenario.receiver, f"/slack/{scenario.receiver}")  # type: ignore[attr-defined]
    assert lines[0].startswith("0:00:00 ") and "is not active: turning the fault on" in lines[0]
    assert f"fault on: {scenario.fault.describe()} (alert raised)" in lines[1]
    assert f"{scenario.alert} firing in Alertmanager after" in lines[2]
    assert f"delivered to {scenario.receiver} (/slack/{scenario.receiver}) after" in lines[3]
    assert lines[4].endswith("fault off: alert resolved")
    assert (
        f"resolved: {scenario.receiver} (/slack/{scenario.receiver}) got the resolution" in lines[5]
    )
    received = [notified(e.body, scenario) for e in sink.log.list(receiver=scenario.receiver)]
    assert received == ["firing", "resolved"]


def test_an_alert_that_never_fires_fails_the_fire_step_and_the_fault_is_turned_off(
    alertmanager: str, sink: AlertSinkServer
) -> None:
    scenario = BY_NAME["payment-provider-down"]
    rule, fake, lines = Rule(alertmanager, raises_alert=False), FakeTime(), []
    with pytest.raises(ScenarioDrillError) as raised:
        drill(scenario, alertmanager, sink_url(sink), rule, fake, lines)()
    assert raised.value.step == "fire"
    assert str(raised.value).startswith(
        'PaymentSuccessRatioLow{service="payment",team="payments",severity="critical"} did not'
        " fire in Alertmanager: look at Prometheus' alerts page for the rule (pending? the ratio"
        " needs payments"
    )
    assert f"within {scenario.fire_timeout_seconds}s" in str(raised.value)
    assert rule.calls == ["on payment", "off payment"]
    assert fake.now >= scenario.fire_timeout_seconds
    assert lines[-1].endswith("fault off after the failure: alert resolved")
    assert [step.step for step in raised.value.steps] == ["quiet", "on", "off"]


def test_a_fault_that_cannot_be_turned_on_is_still_turned_off(
    alertmanager: str, sink: AlertSinkServer
) -> None:
    rule = Rule(alertmanager, on_error="docker compose exec failed: no such service")
    with pytest.raises(ScenarioDrillError) as raised:
        drill(BY_NAME["payment-errors"], alertmanager, sink_url(sink), rule, FakeTime())()
    assert raised.value.step == "on"
    assert str(raised.value) == (
        "the fault could not be turned on: docker compose exec failed: no such service"
    )
    assert rule.calls == ["on payment", "off payment"]


def test_a_receiver_that_gets_nothing_fails_the_deliver_step_and_the_fault_is_turned_off(
    alertmanager: str,
) -> None:
    # Alertmanager notifies its own sink; the drill asks another one, which hears nothing.
    with serving_alert_sink() as elsewhere:
        rule, fake = Rule(alertmanager), FakeTime()
        with pytest.raises(ScenarioDrillError) as raised:
            drill(BY_NAME["trading-latency"], alertmanager, sink_url(elsewhere), rule, fake)()
    assert raised.value.step == "deliver"
    assert "but the alert sink at http://127.0.0.1:" in str(raised.value)
    assert "got no notification of it for trading" in str(raised.value)
    assert rule.calls == ["on trading", "off trading"]
    assert [step.step for step in raised.value.steps] == ["quiet", "on", "fire", "off"]


def test_an_alert_routed_elsewhere_fails_the_route_step(
    alertmanager: str, sink: AlertSinkServer
) -> None:
    wrong = replace(BY_NAME["trading-latency"], receiver="ai")
    rule = Rule(alertmanager)
    with pytest.raises(ScenarioDrillError) as raised:
        drill(wrong, alertmanager, sink_url(sink), rule, FakeTime())()
    assert raised.value.step == "route"
    assert str(raised.value).startswith("ServiceHighLatency is routed to trading, not ai")
    assert rule.calls == ["on trading", "off trading"]


def test_an_alert_already_active_is_waited_for_and_nothing_is_broken(
    alertmanager: str, sink: AlertSinkServer
) -> None:
    scenario = BY_NAME["market-data-feed-stalled"]
    post(alertmanager, scenario, timedelta(minutes=30))
    rule, fake = Rule(alertmanager), FakeTime()
    with pytest.raises(ScenarioDrillError) as raised:
        drill(scenario, alertmanager, sink_url(sink), rule, fake)()
    assert raised.value.step == "quiet"
    assert "was active in Alertmanager before the drill and did not end" in str(raised.value)
    assert fake.now >= scenario.resolve_timeout_seconds
    assert rule.calls == []


def test_no_alertmanager_fails_at_once_saying_what_to_check(sink: AlertSinkServer) -> None:
    rule = Rule(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ScenarioDrillError) as raised:
        drill(BY_NAME["trading-latency"], rule.alertmanager, sink_url(sink), rule, FakeTime())()
    assert raised.value.step == "quiet"
    assert "is the stack running? ./start-monitoring.sh status" in str(raised.value)
    assert rule.calls == []


def test_an_interrupt_turns_the_fault_off_and_goes_on(
    alertmanager: str, sink: AlertSinkServer
) -> None:
    rule, fake = Rule(alertmanager, raises_alert=False), FakeTime(interrupt_after=30)
    with pytest.raises(KeyboardInterrupt):
        drill(BY_NAME["platform-killed"], alertmanager, sink_url(sink), rule, fake)()
    assert rule.calls == ["on api-gateway", "off api-gateway"]


def test_a_fault_that_cannot_be_turned_off_says_so_with_the_command_to_do_it(
    alertmanager: str, sink: AlertSinkServer
) -> None:
    rule = Rule(alertmanager, raises_alert=False, off_error="docker compose exec failed: gone")
    with pytest.raises(ScenarioDrillError) as raised:
        drill(BY_NAME["payment-provider-down"], alertmanager, sink_url(sink), rule, FakeTime())()
    assert raised.value.step == "off"
    message = str(raised.value)
    assert "did not fire in Alertmanager" in message  # the first failure is kept
    assert message.endswith(
        "then the fault could not be turned off (docker compose exec failed: gone): turn it off"
        " by hand: docker compose exec demo-platform finance-demo fault payment --clear"
    )


def test_a_turn_off_that_fails_once_is_tried_again_and_the_step_named(
    alertmanager: str, sink: AlertSinkServer
) -> None:
    @dataclass
    class FailsOnce(Rule):
        def turn_off(self, fault: Fault) -> str:
            if "off" not in " ".join(self.calls):
                self.calls.append(f"off {fault.service}")
                raise FaultControlError("docker compose exec timed out")
            return super().turn_off(fault)

    rule = FailsOnce(alertmanager)
    with pytest.raises(ScenarioDrillError) as raised:
        drill(BY_NAME["trading-latency"], alertmanager, sink_url(sink), rule, FakeTime())()
    assert raised.value.step == "off"
    assert str(raised.value) == "the fault could not be turned off: docker compose exec timed out"
    assert rule.calls == ["on trading", "off trading", "off trading"]
    assert raised.value.steps[-1].detail == "fault off after the failure: alert resolved"
