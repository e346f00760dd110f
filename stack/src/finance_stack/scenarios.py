"""The drill scenarios: each real failure `drill SCENARIO` causes on the demo platform, the alert
it must raise, the receiver that alert must reach, and how long each wait may take.

This table is the one place they are written: `drill --list` prints it, `drill SCENARIO` runs
it (scenario_drill.py), and tests/stack/test_scenarios.py checks it against the real rules (the
alert, its labels and its `for:`), the inventory (teams, objectives, latency thresholds), the
routing (alertmanager/tests/routes.yml rows and amtool) and the platform's knobs.

Timeouts are derived, not guessed: a wait for the alert to fire allows the time its expression
needs to become true after the fault (onset), the rule's `for:`, and the pipeline (a scrape, an
exporter refresh, a rule evaluation, the send to Alertmanager); the wait for delivery allows
Alertmanager's group_interval (a group that already exists is flushed no sooner); the wait for
the resolve allows the time the expression needs to become false again (recovery), the pipeline
and group_interval. Each onset and recovery says where it comes from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# prometheus/prometheus.yml (global), the exporters' DEFAULT_MIN_INTERVAL_SECONDS, and
# alertmanager/alertmanager.yml's default route; tests/stack/test_scenarios.py reads them there.
SCRAPE_INTERVAL_SECONDS = 15
EVALUATION_INTERVAL_SECONDS = 15
EXPORTER_REFRESH_SECONDS = 10
GROUP_WAIT_SECONDS = 30
GROUP_INTERVAL_SECONDS = 300
# A scrape, an exporter refresh, an evaluation and the send, with room for a slow machine.
PIPELINE_SECONDS = SCRAPE_INTERVAL_SECONDS + EXPORTER_REFRESH_SECONDS + EVALUATION_INTERVAL_SECONDS
MARGIN_SECONDS = 60
# The fast burn of monitoring/inventory.yml: 14.4 times the budget over 1h and 5m, for 2m.
FAST_BURN_FACTOR = 14.4
FAST_BURN_FOR_SECONDS = 120
# An error drill fails this many times the share that fires the fast burn: the 1h window gets
# there in a tenth of an hour, and the drill ends before the 6h window reaches the slow burn's
# 6x (scenario tests check it), so it pages once, spending about 3% of the 30-day budget.
ERROR_DRILL_MULTIPLE = 10
# A latency drill slows every request by this multiple of the service's threshold: every one of
# them lands above it, in a bucket of its own, whatever the handler itself takes.
LATENCY_DRILL_MULTIPLE = 1.5
# The demo platform's compose service, which runs all five platform services.
PLATFORM_CONTAINER = "demo-platform"


@dataclass(frozen=True)
class Fault:
    """What a scenario turns on: `knobs` of one platform service (its /-/faults), or, with no
    knobs, a kill of the container that runs the platform."""

    service: str
    knobs: Mapping[str, object] = field(default_factory=dict)

    @property
    def kills(self) -> bool:
        """Whether the fault is the platform's container killed (docker compose kill)."""
        return not self.knobs

    def describe(self) -> str:
        """One line: what is broken."""
        if self.kills:
            return (
                f"docker compose kill {PLATFORM_CONTAINER} (all five services, {self.service} too)"
            )
        settings = " ".join(f"{name}={value}" for name, value in self.knobs.items())
        return f"{self.service} {settings}"


@dataclass(frozen=True)
class Scenario:
    """One drill: the fault, the alert it must raise (name and labels), where it must arrive."""

    name: str
    summary: str
    fault: Fault
    alert: str
    labels: Mapping[str, str]
    receiver: str
    for_seconds: int
    onset_seconds: int
    recovery_seconds: int
    hint: str

    @property
    def fire_timeout_seconds(self) -> int:
        """How long the alert may take to fire in Alertmanager after the fault is on."""
        return self.onset_seconds + self.for_seconds + PIPELINE_SECONDS + MARGIN_SECONDS

    @property
    def deliver_timeout_seconds(self) -> int:
        """How long the receiver may take to get it once Alertmanager has it."""
        return GROUP_INTERVAL_SECONDS + MARGIN_SECONDS

    @property
    def resolve_timeout_seconds(self) -> int:
        """How long the resolve may take to reach the receiver after the fault is off."""
        return self.recovery_seconds + PIPELINE_SECONDS + GROUP_INTERVAL_SECONDS + MARGIN_SECONDS

    def listing(self) -> dict[str, object]:
        """The scenario as `drill --list --json` prints it."""
        return {
            "name": self.name,
            "summary": self.summary,
            "fault": self.fault.describe(),
            "alert": self.alert,
            "labels": dict(self.labels),
            "receiver": self.receiver,
            "fire_timeout_seconds": self.fire_timeout_seconds,
            "deliver_timeout_seconds": self.deliver_timeout_seconds,
            "resolve_timeout_seconds": self.resolve_timeout_seconds,
        }


def _errors(service: str, team: str, availability: float) -> Scenario:
    """A share of the service's requests fails: its availability SLO burns fast and pages."""
    threshold = FAST_BURN_FACTOR * (1 - availability)
    ratio = round(ERROR_DRILL_MULTIPLE * threshold, 4)
    return Scenario(
        name=f"{service}-errors",
        summary=f"{ratio:.1%} of {service}'s requests answer 500",
        fault=Fault(service, {"error_ratio": ratio}),
        alert="SLOErrorBudgetBurn",
        labels={"service": service, "team": team, "severity": "critical"}
        | {"slo": "availability", "burn": "fast"},
        receiver=team,
        for_seconds=FAST_BURN_FOR_SECONDS,
        # The 1h error ratio passes the threshold once threshold/ratio of the hour has failed
        # (sooner on a stack younger than an hour); two scrapes before rate() has a value.
        onset_seconds=math.ceil(threshold / ratio * 3600) + 2 * SCRAPE_INTERVAL_SECONDS,
        # The 5m ratio falls under the threshold once the failures leave its window.
        recovery_seconds=300,
        hint=f'the burn needs traffic: slo:requests:rate1h{{service="{service}"}} >= 0.1 '
        "(about 10 minutes of the demo load after a start)",
    )


def _latency(service: str, team: str, threshold_seconds: float) -> Scenario:
    """Every request of the service is slowed past its latency threshold: its P95 follows."""
    added_ms = round(LATENCY_DRILL_MULTIPLE * threshold_seconds * 1000)
    return Scenario(
        name=f"{service}-latency",
        summary=f"every {service} request takes {added_ms} ms longer (P95 threshold "
        f"{threshold_seconds:g}s)",
        fault=Fault(service, {"added_latency_ms": added_ms}),
        alert="ServiceHighLatency",
        labels={"service": service, "team": team, "severity": "warning"},
        receiver=team,
        for_seconds=600,
        # The 5m P95 passes the threshold once 5% of the window is slow (15 s), after two
        # scrapes of the slowed histogram.
        onset_seconds=15 + 2 * SCRAPE_INTERVAL_SECONDS,
        # ...and falls back once fewer than 5% of the last 5 minutes were slow.
        recovery_seconds=300,
        hint=f"the P95 needs traffic: rate(http_request_duration_seconds_count{{service="
        f'"{service}"}}[5m]) > 0.1',
    )


SCENARIOS: tuple[Scenario, ...] = (
    *(
        _errors(service, team, availability)
        for service, team, availability in (
            ("api-gateway", "platform", 0.999),
            ("payment", "payments", 0.9995),
            ("trading", "trading", 0.999),
            ("market-data", "trading", 0.998),
            ("user-management", "platform", 0.995),
        )
    ),
    *(
        _latency(service, team, threshold)
        for service, team, threshold in (
            ("api-gateway", "platform", 0.5),
            ("payment", "payments", 1.0),
            ("trading", "trading", 0.1),
            ("market-data", "trading", 2.0),
            ("user-management", "platform", 1.0),
        )
    ),
    Scenario(
        name="payment-provider-down",
        summary="the payment provider fails every charge (recorded as failed payments)",
        fault=Fault("payment", {"provider_failing": True}),
        alert="PaymentSuccessRatioLow",
        labels={"service": "payment", "team": "payments", "severity": "critical"},
        receiver="payments",
        for_seconds=900,
        # payments:success:ratio30m falls under 90% once about 6% of the 30-minute window has
        # failed (from a 96% norm): two minutes at the demo's 30 payments a minute.
        onset_seconds=180,
        # ...and stays there until the failures have left the 30-minute window.
        recovery_seconds=1800,
        hint="the ratio needs payments: payments:final:delta30m >= 10 (the demo load sends"
        " about 30 a minute)",
    ),
    Scenario(
        name="market-data-feed-stalled",
        summary="the market-data feed stops writing ticks (every provider goes stale)",
        fault=Fault("market-data", {"feed_stalled": True}),
        alert="MarketDataStale",
        # binance (crypto) trades around the clock: its page is never muted by market hours.
        labels={
            "service": "market-data",
            "team": "trading",
            "severity": "critical",
            "provider": "binance",
        },
        receiver="trading",
        for_seconds=120,
        # The newest tick is more than 60 s old, read on the portfolio exporter's next refresh.
        onset_seconds=60 + EXPORTER_REFRESH_SECONDS,
        # The next tick (every second) on the next refresh.
        recovery_seconds=EXPORTER_REFRESH_SECONDS + SCRAPE_INTERVAL_SECONDS,
        hint='finance_market_data_age_seconds{provider="binance"} comes from the'
        " portfolio exporter reading Redis: is it up?",
    ),
    Scenario(
        name="signal-accuracy-drop",
        summary="closing signals succeed 20% of the time, so the model evaluations score low",
        fault=Fault("trading", {"signal_accuracy": 0.2}),
        alert="ModelAccuracyLow",
        labels={"service": "signals", "team": "ai", "severity": "warning"},
        receiver="ai",
        for_seconds=3600,
        # The evaluation (the platform's, every 120 s over the last 30 minutes of closed
        # signals) reads under 0.55 once 21% of its window is wrong: 6.4 minutes, plus a round.
        onset_seconds=384 + 120,
        # ...and over it again once the wrong ones have left the window, plus a round.
        recovery_seconds=1800 + 120,
        hint="the platform scores a model only with 50 decided signals in 30 minutes: see"
        " model_evaluations and finance_prediction_accuracy_ratio",
    ),
    Scenario(
        name="platform-killed",
        summary="the demo platform's container is killed; api-gateway's owner is paged",
        fault=Fault("api-gateway"),
        alert="ServiceDown",
        labels={"service": "api-gateway", "team": "platform", "severity": "critical"},
        receiver="platform",
        for_seconds=60,
        # The next scrape fails.
        onset_seconds=SCRAPE_INTERVAL_SECONDS,
        # docker compose start, the platform's start (a few seconds) and the next scrape.
        recovery_seconds=30 + SCRAPE_INTERVAL_SECONDS,
        hint=f'up{{service="api-gateway"}} is 0 while {PLATFORM_CONTAINER} is down',
    ),
)

BY_NAME: dict[str, Scenario] = {scenario.name: scenario for scenario in SCENARIOS}
