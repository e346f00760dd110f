"""Every drill scenario, live (issue 14, acceptance 3): on a demo stack of its own,
`./start-monitoring.sh drill SCENARIO --json` breaks the demo platform for real, the scenario's
alert fires in Alertmanager, reaches its team's receiver at the alert sink, and resolves once
the fault is off; the fault is off again afterwards.

The test override, and the only one besides test_stack's shorter default-route timings
(group_wait 5s, group_interval 10s): in the copy's prometheus/rules, the `for:` of each
scenario's own rule (the rule of its alert with its labels, nothing else) is rewritten to
SHORT_FOR, so the drills take minutes, not hours (ModelAccuracyLow's `for: 1h`). The windows
of the expressions are the real ones, so the slow scenarios stay slow: the payment provider's
and the accuracy drop's alerts resolve only when their 30-minute windows have forgotten the
fault. The drills' own waits (finance_stack/scenarios.py) are derived from the real `for:`, so
they are upper bounds here. Three scenarios run on every pass (EVERY_RUN); the other eleven
with `AI_FINANCE_ALL_DRILLS=1 tests/run.sh tests/live/test_drills.py`, in three concurrent
lanes (LANES) on the same stack: about an hour (57 min measured) instead of three hours.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_stack import (
    Stack,
    demo_stack,
    prometheus_query,
)

from finance_demo.platform.app import SERVICES
from finance_demo.platform.faults import Faults
from finance_stack.alert_match import notified
from finance_stack.scenarios import SCENARIOS, Scenario

SHORT_FOR = "30s"
# The burn alerts stay quiet below 0.1 requests per second over their long window: wait for
# every service's hourly rate to be there (about 10 minutes of the demo load after a start).
RATE_WAIT_SECONDS = 1200


def _ours(rule: dict[str, Any], scenario: Scenario) -> bool:
    labels = rule.get("labels") or {}
    return rule.get("alert") == scenario.alert and all(
        labels.get(name, value) == value for name, value in scenario.labels.items()
    )


def shorten_scenario_for(root: Path) -> dict[str, int]:
    """Rewrite `for:` to SHORT_FOR in the copy's rule of each scenario's alert; how many rules
    of each scenario were rewritten (exactly one each, or the test stops here)."""
    rewritten = dict.fromkeys((s.name for s in SCENARIOS), 0)
    for path in sorted((root / "prometheus" / "rules").rglob("*.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        changed = False
        for group in document.get("groups", []):
            for rule in group["rules"]:
                for scenario in SCENARIOS:
                    if _ours(rule, scenario):
                        rule["for"] = SHORT_FOR
                        rewritten[scenario.name] += 1
                        changed = True
        if changed:
            path.write_text(yaml.safe_dump(document, sort_keys=False, width=1000))
    assert set(rewritten.values()) == {1}, rewritten
    return rewritten


def _wait_for_traffic(stack: Stack) -> None:
    # poll every 10s, at most RATE_WAIT_SECONDS
    deadline = time.monotonic() + RATE_WAIT_SECONDS
    while time.monotonic() < deadline:
        measured = prometheus_query(stack, "slo:requests:rate1h >= 0.1")
        if {sample["metric"]["service"] for sample in measured} >= set(SERVICES):  # type: ignore[index]
            return
        time.sleep(10)
    pytest.fail(
        f"too little traffic for the burn alerts: {prometheus_query(stack, 'slo:requests:rate1h')}"
    )


@pytest.fixture(scope="module")
def stack(standin_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(
        standin_env, tmp_path_factory.mktemp("drills"), "drills", shorten_scenario_for
    ) as running:
        yield running


def _budget(scenario: Scenario) -> int:
    """The longest the drill may take: a quiet wait, each step's wait, and some to spare."""
    waits = (
        scenario.resolve_timeout_seconds,  # the quiet wait before the fault is bounded so
        scenario.fire_timeout_seconds,
        scenario.deliver_timeout_seconds,
        scenario.resolve_timeout_seconds,
    )
    return sum(waits) + 300


def _received(stack: Stack, scenario: Scenario, since: datetime) -> list[str | None]:
    url = stack.url("ALERT_SINK_PORT", f"/notifications?receiver={scenario.receiver}")
    with urllib.request.urlopen(url, timeout=10) as response:
        entries = json.loads(response.read())
    return [
        notified(entry["body"], scenario)
        for entry in entries
        if datetime.fromisoformat(entry["time"]) >= since
    ]


def _fault_is_off(stack: Stack, scenario: Scenario) -> None:
    """The platform is as the drill found it: serving again, or every knob at its default."""
    if scenario.fault.kills:
        up = prometheus_query(stack, f'up{{service="{scenario.fault.service}"}} == 1')
        assert up, f"{scenario.fault.service} is not scraped again after the drill"
        return
    service = scenario.fault.service
    shown = stack.docker(
        "compose",
        "--project-directory",
        str(stack.root),
        "exec",
        "-T",
        "demo-platform",
        "finance-demo",
        "fault",
        service,
    )
    assert json.loads(shown) == Faults().knobs(service)


# The drills run on every CI pass: minutes each, a symptom of each kind (a feed stall, a
# service killed, added latency).
EVERY_RUN = ("market-data-feed-stalled", "platform-killed", "api-gateway-latency")

# The other eleven (drills_all, tests/live/conftest.py): the burn drills need an hour's rate of
# traffic first, and the payment and accuracy drills resolve only when their 30-minute windows
# have forgotten the fault, so one after another they take three hours. They run in three lanes
# at once on one stack, each lane's scenarios in turn, and no two lanes ever break the same
# service (a service's /-/faults holds one set of knobs, and a drill sets the whole set):
# - the gateway passes an upstream's 5xx on, and answers 504 after its 5 s upstream timeout,
#   so api-gateway-errors runs first and while it runs the other lanes break nothing a gateway
#   request can see as an error: the provider's failures are 402s, the accuracy drop changes
#   only which signals succeed (test_lanes_keep_the_gateway_drill_alone checks the knobs);
# - afterwards the upstreams' own errors and latency may burn the gateway's budget too, as they
#   would in production; that pages the platform team about the gateway, not the alert a
#   drill waits for (each drill matches its alert by name and labels, finance_stack.alert_match).
# The longest lane (the accuracy drop first) took 54 min here; with the start, 57 min.
LANES: tuple[tuple[str, ...], ...] = (
    (
        "api-gateway-errors",
        "market-data-errors",
        "market-data-latency",
        "user-management-errors",
        "user-management-latency",
    ),
    ("payment-provider-down", "payment-errors", "payment-latency"),
    ("signal-accuracy-drop", "trading-errors", "trading-latency"),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
# Knobs a gateway request can see as an error: an injected 500, or latency past its timeout.
HTTP_KNOBS = {"error_ratio", "added_latency_ms"}


def _check(
    stack: Stack, scenario: Scenario, result: subprocess.CompletedProcess[str], since: datetime
) -> None:
    """The drill passed: it said so, in its steps, and the receiver got the page and the resolve."""
    assert result.returncode == 0, result.stderr[-6000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["scenario"] == scenario.name
    assert (summary["alert"], summary["receiver"]) == (scenario.alert, scenario.receiver)
    assert summary["path"] == f"/slack/{scenario.receiver}"
    assert [step["step"] for step in summary["steps"]] == [
        "quiet",
        "on",
        "fire",
        "deliver",
        "off",
        "resolve",
    ]
    # Each step printed with its time since the drill began (h:mm:ss).
    stamped = [line for line in result.stderr.splitlines() if line[4:5].isdigit()]
    assert len(stamped) == 6, result.stderr
    # The sink holds, for the receiver, the alert firing and then resolved since the drill began.
    received = [status for status in _received(stack, scenario, since) if status]
    assert "firing" in received and received[-1] == "resolved", received
    _fault_is_off(stack, scenario)


def _drill(stack: Stack, scenario: Scenario) -> float:
    """Run the drill and check it; the seconds it took."""
    if scenario.alert == "SLOErrorBudgetBurn":
        _wait_for_traffic(stack)
    since, began = datetime.now(UTC), time.monotonic()
    result = stack.script("drill", scenario.name, "--json", timeout=_budget(scenario))
    _check(stack, scenario, result, since)
    return time.monotonic() - began


@pytest.mark.timeout(max(_budget(BY_NAME[name]) for name in EVERY_RUN) + 120)
@pytest.mark.parametrize("name", EVERY_RUN)
def test_the_scenario_fires_reaches_its_receiver_and_resolves(stack: Stack, name: str) -> None:
    _drill(stack, BY_NAME[name])


def test_every_scenario_runs_once_every_pass_or_in_one_lane() -> None:
    laned = [name for lane in LANES for name in lane]
    assert sorted([*EVERY_RUN, *laned]) == sorted(BY_NAME)


def test_no_two_lanes_break_the_same_service() -> None:
    services = [{BY_NAME[name].fault.service for name in lane} for lane in LANES]
    for i, mine in enumerate(services):
        for theirs in services[i + 1 :]:
            assert not mine & theirs, (mine, theirs)


def test_lanes_keep_the_gateway_drill_alone() -> None:
    """api-gateway-errors comes first in its lane, and the other lanes begin with faults that
    no gateway request sees as an error or a timeout."""
    gateway = [lane for lane in LANES if "api-gateway-errors" in lane]
    assert len(gateway) == 1 and gateway[0][0] == "api-gateway-errors"
    for lane in LANES:
        if lane is not gateway[0]:
            first = BY_NAME[lane[0]].fault
            assert first.knobs and not HTTP_KNOBS & set(first.knobs), lane[0]


def _lane(stack: Stack, lane: Sequence[str]) -> list[tuple[str, float | None, str]]:
    """Each scenario of the lane in turn: its name, its seconds, and what failed ('' if none).
    A failed drill turns its fault off (scenario_drill.py), so the lane goes on."""
    outcomes: list[tuple[str, float | None, str]] = []
    for name in lane:
        try:
            outcomes.append((name, _drill(stack, BY_NAME[name]), ""))
        except (Exception, pytest.fail.Exception) as error:  # every failure, each reported
            outcomes.append((name, None, f"{type(error).__name__}: {error}"[-4000:]))
    return outcomes


def _lanes_budget() -> int:
    return RATE_WAIT_SECONDS + max(sum(_budget(BY_NAME[n]) for n in lane) for lane in LANES) + 300


@pytest.mark.drills_all
@pytest.mark.timeout(_lanes_budget())
def test_the_other_scenarios_fire_reach_their_receivers_and_resolve_in_lanes(
    stack: Stack,
) -> None:
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(LANES)) as pool:
        outcomes = [o for lane in pool.map(lambda lane: _lane(stack, lane), LANES) for o in lane]
    for name, seconds, _ in outcomes:
        print(f"drill {name}: {'failed' if seconds is None else f'{seconds:.0f} s'}")
    print(f"all lanes: {time.monotonic() - began:.0f} s")
    failed = {name: error for name, _, error in outcomes if error}
    assert not failed, failed
