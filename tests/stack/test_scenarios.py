"""The drill scenarios (finance_stack/scenarios.py) against what they stand for, offline: each
expects an alert a real rule raises with those labels and that `for:`, routed (per the paging
policy, alertmanager/tests/routes.yml and amtool) to the receiver it names; its fault is knobs
the platform has; its numbers are the inventory's; its waits are made of the real intervals."""

from __future__ import annotations

import math
import re

import pytest
import yaml

from finance_demo.catalog import PROVIDER_SYMBOLS
from finance_demo.platform import evaluation, trading
from finance_demo.platform.app import SERVICES
from finance_demo.platform.faults import knobs_of, parse
from finance_demo.platform.gateway import UPSTREAM_TIMEOUT_SECONDS
from finance_exporter.config import DEFAULT_MIN_INTERVAL_SECONDS
from finance_stack import scenarios
from finance_stack.scenarios import SCENARIOS, Scenario
from monitoring import alerting
from monitoring.inventory import load as load_inventory
from monitoring.inventory import seconds
from support.alertmanager import route_test
from support.repo import ROOT
from support.rules import SERIES_LABELS, full_labels, rule_of

INVENTORY = load_inventory()
SERVICE = {service.name: service for service in INVENTORY.services}


def _duration(text: str) -> int:
    return sum(
        int(n) * {"s": 1, "m": 60, "h": 3600}[unit] for n, unit in re.findall(r"(\d+)([smh])", text)
    )


by_name = pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)


def test_scenario_names_are_unique_and_listed_by_name() -> None:
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS) == len(scenarios.BY_NAME)
    assert all(re.fullmatch(r"[a-z][a-z0-9-]+", s.name) for s in SCENARIOS)


def test_every_platform_service_has_an_error_and_a_latency_drill() -> None:
    faults = {(s.fault.service, next(iter(s.fault.knobs), "kill")) for s in SCENARIOS}
    for service in SERVICES:
        assert {(service, "error_ratio"), (service, "added_latency_ms")} <= faults
    assert {("payment", "provider_failing"), ("market-data", "feed_stalled")} <= faults
    assert {("trading", "signal_accuracy"), ("api-gateway", "kill")} <= faults


@by_name
def test_the_expected_alert_is_a_rule_with_those_labels_and_that_for(scenario: Scenario) -> None:
    rule = rule_of(scenario)
    not_static = set(scenario.labels) - set(rule["labels"])
    assert not_static <= SERIES_LABELS, not_static
    for name in not_static:
        assert name in str(rule["expr"]), f"the rule's series carry no {name}"
    assert _duration(str(rule["for"])) == scenario.for_seconds


@by_name
def test_the_alert_is_routed_to_the_named_receiver(scenario: Scenario) -> None:
    labels = full_labels(scenario)
    receivers = alerting.expected_receivers(INVENTORY, labels)
    # The team's channel: every alert of a team reaches it, critical or not.
    assert receivers[-1] == scenario.receiver == INVENTORY.teams[labels["team"]].name
    rows = yaml.safe_load((ROOT / "alertmanager" / "tests" / "routes.yml").read_text())
    row_labels = {k: v for k, v in labels.items() if k in {*alerting.ROW_LABELS, "alertname"}}
    matching = [
        row
        for row in rows
        if row["labels"] == row_labels | {k: v for k, v in labels.items() if k in SERIES_LABELS}
    ]
    assert [row["receivers"] for row in matching] == [receivers], "no routes.yml row"
    result = route_test(labels, receivers)
    assert result.returncode == 0, f"routed to {result.stdout.strip()}, expected {receivers}"


@by_name
def test_the_fault_is_knobs_the_platform_has_or_its_kill(scenario: Scenario) -> None:
    fault = scenario.fault
    assert fault.service in SERVICES
    if fault.kills:
        assert scenario.alert == "ServiceDown"
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        labels = compose["services"][scenarios.PLATFORM_CONTAINER]["labels"]
        assert fault.service in labels["ai-finance.scrape.services"].split(",")
        return
    assert set(fault.knobs) <= set(knobs_of(fault.service))
    parse(fault.service, dict(fault.knobs))  # the platform accepts the values


def test_error_drills_fail_ten_times_what_fires_the_fast_burn_and_page_once() -> None:
    fast, slow = (next(r for r in INVENTORY.burn_rates if r.burn == b) for b in ("fast", "slow"))
    assert (scenarios.FAST_BURN_FACTOR, scenarios.FAST_BURN_FOR_SECONDS) == (
        fast.factor,
        seconds(fast.for_),
    )
    drills = [s for s in SCENARIOS if "error_ratio" in s.fault.knobs]
    assert len(drills) == len(SERVICES)
    for scenario in drills:
        service = SERVICE[scenario.fault.service]
        assert scenario.labels["team"] == service.team
        budget = 1 - service.availability
        ratio = float(str(scenario.fault.knobs["error_ratio"]))
        assert ratio == pytest.approx(10 * fast.factor * budget, abs=1e-4)
        # The 1h window reaches the fast burn's ratio once factor * budget / ratio of it failed.
        assert scenario.onset_seconds >= fast.factor * budget / ratio * seconds(fast.long)
        # Until it is delivered the drill fails `ratio` of the requests; over the slow burn's
        # long window that stays under its threshold, so no second page follows the drill.
        lasting = scenario.onset_seconds + scenario.for_seconds + scenarios.PIPELINE_SECONDS
        lasting += scenarios.GROUP_WAIT_SECONDS
        assert ratio * lasting / seconds(slow.long) < slow.factor * budget, scenario.name


def test_latency_drills_slow_every_request_past_the_threshold_within_the_timeouts() -> None:
    drills = [s for s in SCENARIOS if "added_latency_ms" in s.fault.knobs]
    assert len(drills) == len(SERVICES)
    for scenario in drills:
        service = SERVICE[scenario.fault.service]
        assert scenario.labels["team"] == service.team
        added = float(str(scenario.fault.knobs["added_latency_ms"])) / 1000
        assert added == pytest.approx(scenarios.LATENCY_DRILL_MULTIPLE * service.latency_seconds)
        # Above the threshold's bucket whatever the handler takes, and still answered in time
        # through the gateway (a timed-out request would be a 504, not a slow one).
        assert service.latency_seconds < added < UPSTREAM_TIMEOUT_SECONDS


def test_the_accuracy_drill_follows_the_platforms_evaluation() -> None:
    (scenario,) = [s for s in SCENARIOS if "signal_accuracy" in s.fault.knobs]
    threshold = float(re.findall(r"< ([\d.]+)", str(rule_of(scenario)["expr"]))[0])
    outcomes = dict(trading._SIGNAL_OUTCOMES)
    usual = outcomes["success"] / (outcomes["success"] + outcomes["failure"])
    wrong = float(str(scenario.fault.knobs["signal_accuracy"]))
    # The evaluation's window reads under the threshold once this share of it is wrong.
    share = (usual - threshold) / (usual - wrong)
    window, interval = evaluation.EVALUATION_WINDOW_SECONDS, evaluation.EVALUATION_INTERVAL_SECONDS
    assert scenario.onset_seconds >= math.ceil(share * window) + interval
    assert scenario.recovery_seconds >= window + interval
    assert usual > threshold > wrong


def test_the_feed_drill_expects_a_provider_whose_page_is_never_muted() -> None:
    (scenario,) = [s for s in SCENARIOS if "feed_stalled" in s.fault.knobs]
    provider = scenario.labels["provider"]
    assert provider in PROVIDER_SYMBOLS
    (market,) = [m for m in INVENTORY.markets if provider in m.providers]
    assert market.open is None, f"{provider} is muted while {market.name} is closed"


def test_the_waits_are_made_of_the_stacks_real_intervals() -> None:
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())["global"]
    route = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())["route"]
    assert _duration(prometheus["scrape_interval"]) == scenarios.SCRAPE_INTERVAL_SECONDS
    assert _duration(prometheus["evaluation_interval"]) == scenarios.EVALUATION_INTERVAL_SECONDS
    assert DEFAULT_MIN_INTERVAL_SECONDS == scenarios.EXPORTER_REFRESH_SECONDS
    assert _duration(route["group_wait"]) == scenarios.GROUP_WAIT_SECONDS
    assert _duration(route["group_interval"]) == scenarios.GROUP_INTERVAL_SECONDS


@by_name
def test_each_wait_covers_its_part_of_the_pipeline(scenario: Scenario) -> None:
    assert scenario.fire_timeout_seconds >= (
        scenario.onset_seconds + scenario.for_seconds + scenarios.PIPELINE_SECONDS
    )
    assert scenario.deliver_timeout_seconds > scenarios.GROUP_INTERVAL_SECONDS
    assert scenario.resolve_timeout_seconds >= (
        scenario.recovery_seconds + scenarios.PIPELINE_SECONDS + scenarios.GROUP_INTERVAL_SECONDS
    )
    listing = scenario.listing()
    assert listing["alert"] == scenario.alert and listing["receiver"] == scenario.receiver


def test_the_operations_guide_lists_every_scenario_with_its_alert_and_receiver() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in text.splitlines()
        if line.startswith("| `") and line.count("|") == 7
    }
    assert sorted(rows) == sorted(s.name for s in SCENARIOS)
    for scenario in SCENARIOS:
        row = rows[scenario.name]
        assert f"`{scenario.receiver}`" in row, row
        assert scenario.alert in row or "the same" in row, row
        fire, resolve = (cell.strip() for cell in row.split("|")[5:7])
        assert fire == f"{round(scenario.fire_timeout_seconds / 60)}m", row
        assert resolve == f"{round(scenario.resolve_timeout_seconds / 60)}m", row
