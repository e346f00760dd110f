"""`drill SCENARIO`: break the demo platform on purpose and follow the real alert end to end.

The steps, each printed with the time since the drill began: wait until the scenario's alert is
not already active (a drill that finds it firing would prove nothing), turn the fault on, wait
for the alert to fire in Alertmanager (GET /api/v2/alerts) and check it is routed to the
expected receiver, wait until the alert sink has received it under that receiver, turn the
fault off, wait for the resolution at the sink. Every wait is bounded by the scenario's
timeouts (scenarios.py). Whatever happens, a fault that was turned on is turned off again
before the drill returns or fails: a failed drill leaves the stack as it found it.

What counts as the scenario's alert, in Alertmanager and at the sink: alert_match.py.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from finance_stack.alert_match import entries, matching, notified, receivers_of, state_of
from finance_stack.drill import DrillError, request_json, why
from finance_stack.fault_control import FaultControl, FaultControlError
from finance_stack.scenarios import PLATFORM_CONTAINER, Fault, Scenario

POLL_SECONDS = 5.0
T = TypeVar("T")


class ScenarioDrillError(DrillError):
    """A step failed: its name, what to look at, and the steps done until then."""

    def __init__(self, step: str, message: str, steps: list[Step]) -> None:
        super().__init__(step, message)
        self.steps = steps


@dataclass(frozen=True)
class Step:
    """One step done: its name, when (seconds since the drill began) and what happened."""

    step: str
    at_seconds: float
    detail: str


@dataclass(frozen=True)
class ScenarioResult:
    """What a successful scenario drill measured."""

    scenario: str
    alert: str
    receiver: str
    path: str
    fired_after_seconds: float
    delivered_after_seconds: float
    resolved_after_seconds: float
    steps: list[Step] = field(default_factory=list)


def manual_off(fault: Fault) -> str:
    """The command that turns the fault off by hand."""
    if fault.kills:
        return f"docker compose start {PLATFORM_CONTAINER}"
    return f"docker compose exec {PLATFORM_CONTAINER} finance-demo fault {fault.service} --clear"


def _elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


@dataclass
class _Drill:
    """One run of a scenario: where to look, how to wait, and the steps done so far."""

    scenario: Scenario
    alertmanager: str
    sink: str
    control: FaultControl
    progress: Callable[[str], None]
    clock: Callable[[], float]
    sleep: Callable[[float], None]
    now: Callable[[], datetime]
    poll_seconds: float
    steps: list[Step] = field(default_factory=list)
    started: float = 0.0
    on: bool = False
    off: bool = False

    def mark(self, step: str, detail: str) -> None:
        at = self.clock() - self.started
        self.steps.append(Step(step, round(at, 1), detail))
        self.progress(f"{_elapsed(at)} {detail}")

    def fail(self, step: str, message: str) -> ScenarioDrillError:
        # The list itself: the off step a failure still takes is recorded on the error too.
        return ScenarioDrillError(step, message, self.steps)

    def wait(
        self, step: str, timeout: float, check: Callable[[], T | None], why_not: Callable[[], str]
    ) -> tuple[T, float]:
        """Poll `check` until it returns something, at most `timeout` seconds."""
        begun = self.clock()
        last_error = ""
        while True:
            try:
                found = check()
            except (urllib.error.URLError, OSError, ValueError) as err:
                found, last_error = None, f" (last poll: {why(err)})"
            if found is not None:
                return found, self.clock() - begun
            if self.clock() - begun >= timeout:
                raise self.fail(step, f"{why_not()} within {timeout:.0f}s{last_error}")
            self.sleep(self.poll_seconds)

    def alerts(self) -> list[dict[str, object]]:
        query = urllib.parse.urlencode({"filter": f'alertname="{self.scenario.alert}"'})
        return matching(request_json(f"{self.alertmanager}/api/v2/alerts?{query}"), self.scenario)

    def sink_entry(self, since: datetime, status: str) -> dict[str, object] | None:
        url = f"{self.sink}/notifications?receiver={self.scenario.receiver}"
        for entry in reversed(entries(request_json(url))):
            if datetime.fromisoformat(str(entry.get("time"))) < since:
                break
            if notified(entry.get("body"), self.scenario) == status:
                return entry
        return None


def _labels(scenario: Scenario) -> str:
    return ",".join(f'{k}="{v}"' for k, v in scenario.labels.items())


def run_scenario(
    scenario: Scenario,
    alertmanager: str,
    sink: str,
    control: FaultControl,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    poll_seconds: float = POLL_SECONDS,
) -> ScenarioResult:
    """Every step in order; ScenarioDrillError names the one that failed. The fault is off
    again when this returns or raises."""
    drill = _Drill(scenario, alertmanager, sink, control, progress, clock, sleep, now, poll_seconds)
    drill.started = clock()
    failure: BaseException | None = None
    try:
        return _steps(drill)
    except BaseException as err:
        failure = err
        raise
    finally:
        if drill.on and not drill.off:
            try:
                drill.mark(
                    "off", f"fault off after the failure: {control.turn_off(scenario.fault)}"
                )
            except FaultControlError as err:
                raise drill.fail(
                    "off",
                    f"{failure}; then the fault could not be turned off ({err}): turn it off by"
                    f" hand: {manual_off(scenario.fault)}",
                ) from failure


def _steps(drill: _Drill) -> ScenarioResult:
    scenario = drill.scenario
    name = f"{scenario.alert}{{{_labels(scenario)}}}"
    try:
        drill.alerts()
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise drill.fail(
            "quiet",
            f"Alertmanager at {drill.alertmanager} {why(err)}: is the stack running?"
            " ./start-monitoring.sh status",
        ) from None
    drill.wait(
        "quiet",
        scenario.resolve_timeout_seconds,
        lambda: True if not drill.alerts() else None,
        lambda: (
            f"{name} was active in Alertmanager before the drill and did not end: a"
            f" drill now would prove nothing; see {drill.alertmanager}/#/alerts"
        ),
    )
    drill.mark("quiet", f"{name} is not active: turning the fault on")
    since = drill.now()
    drill.on = True
    try:
        done = drill.control.turn_on(scenario.fault)
    except FaultControlError as err:
        raise drill.fail("on", f"the fault could not be turned on: {err}") from None
    drill.mark("on", f"fault on: {scenario.fault.describe()} ({done})")
    fired, fired_after = _fire(drill, name)
    receivers = receivers_of(fired)
    if scenario.receiver not in receivers:
        raise drill.fail(
            "route",
            f"{scenario.alert} is routed to {', '.join(receivers) or 'nothing'}, not"
            f" {scenario.receiver}: check alertmanager/alertmanager.yml and the routing tests"
            " (alertmanager/tests/routes.yml)",
        )
    drill.mark(
        "fire",
        f"{scenario.alert} firing in Alertmanager after {fired_after:.0f}s,"
        f" routed to {', '.join(receivers)}",
    )
    delivered, delivered_after = drill.wait(
        "deliver",
        scenario.deliver_timeout_seconds,
        lambda: drill.sink_entry(since, "firing"),
        lambda: (
            f"Alertmanager fires {scenario.alert}, but the alert sink at {drill.sink} got no"
            f" notification of it for {scenario.receiver}: ./start-monitoring.sh logs alertmanager"
            f" (if secrets/alerting/slack_{scenario.receiver}_url points at a real Slack, look in"
            " that channel instead)"
        ),
    )
    path = str(delivered.get("path"))
    drill.mark("deliver", f"delivered to {scenario.receiver} ({path}) after {delivered_after:.0f}s")
    try:
        done = drill.control.turn_off(scenario.fault)
    except FaultControlError as err:  # the failure's own turn-off tries once more
        raise drill.fail("off", f"the fault could not be turned off: {err}") from None
    drill.off = True
    drill.mark("off", f"fault off: {done}")
    since = datetime.fromisoformat(str(delivered.get("time")))
    _, resolved_after = drill.wait(
        "resolve",
        scenario.resolve_timeout_seconds,
        lambda: drill.sink_entry(since, "resolved"),
        lambda: (
            f"the fault is off, but {scenario.receiver} got no resolution of"
            f" {scenario.alert}: is it still firing ({drill.alertmanager}/#/alerts)? Then"
            " ./start-monitoring.sh logs alertmanager"
        ),
    )
    drill.mark(
        "resolve",
        f"resolved: {scenario.receiver} ({path}) got the resolution after {resolved_after:.0f}s",
    )
    return ScenarioResult(
        scenario.name,
        scenario.alert,
        scenario.receiver,
        path,
        round(fired_after, 1),
        round(delivered_after, 1),
        round(resolved_after, 1),
        list(drill.steps),
    )


def _fire(drill: _Drill, name: str) -> tuple[dict[str, object], float]:
    """Wait for the scenario's alert to be active (not suppressed) in Alertmanager."""
    suppressed = ""

    def active() -> dict[str, object] | None:
        nonlocal suppressed
        for alert in drill.alerts():
            state, reasons = state_of(alert)
            if state == "active":
                return alert
            suppressed = f"; it is there but {state}" + (f" ({reasons})" if reasons else "")
        return None

    return drill.wait(
        "fire",
        drill.scenario.fire_timeout_seconds,
        active,
        lambda: (
            f"{name} did not fire in Alertmanager{suppressed}: look at Prometheus' alerts"
            f" page for the rule (pending? {drill.scenario.hint}), then ./start-monitoring.sh logs"
            " prometheus"
        ),
    )
