"""The repository's alertmanager.yml on a real Alertmanager on loopback, at the version the compose
file pins (tests/run.sh builds it from the upstream module: tests/live/images/pinned-go.sh).

Its receivers' secret files are the ones the secrets job writes, pointed at a recorder: the
stack's own alert-sink (finance_stack.alert_sink), a real HTTP server in a thread. Alerts go in
through /api/v2/alerts; the tests assert what reaches the recorder, exactly: which receivers,
how many notifications, how many alerts in each, and that inhibited alerts never notify.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from finance_stack.alert_sink import AlertSinkServer, Notification
from support.alertmanager import running_alertmanager
from support.servers import serving_alert_sink

# Longer than every group's first flush (GROUP_WAIT) with a margin: an alert that inhibition
# failed to mute, or that was grouped wrongly, would have been sent by then.
SETTLE_SECONDS = 4.0
DELIVERY_TIMEOUT_SECONDS = 15.0


@dataclass
class Alertmanager:
    """A running Alertmanager and the recorder its receivers point at."""

    url: str
    sink: AlertSinkServer

    def post(self, *alerts: dict[str, object]) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def alerts(self) -> list[Any]:
        """Alertmanager's view of every alert, with its state (active, suppressed)."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            found: list[Any] = json.loads(response.read())
            return found

    def notifications(self, until: Callable[[list[Notification]], bool]) -> list[Notification]:
        """Poll the recorder (every 0.1s, at most DELIVERY_TIMEOUT_SECONDS) until `until` holds,
        then wait SETTLE_SECONDS more for anything that should not arrive."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while not until(self.sink.log.list()) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(SETTLE_SECONDS)
        return self.sink.log.list()


def alert(
    alertname: str,
    severity: str,
    team: str,
    service: str,
    ends_in_seconds: float = 600,
    **labels: str,
) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "labels": {
            "alertname": alertname,
            "severity": severity,
            "team": team,
            "category": "application",
            "service": service,
            **labels,
        },
        "annotations": {
            "summary": f"{alertname} {severity} on {service}",
            "description": "raised by the live Alertmanager test",
            "runbook_url": f"https://example.invalid/runbooks/{alertname}.md",
            "dashboard_url": "http://localhost:3001/d/sre-slo-overview",
        },
        "startsAt": (now - timedelta(seconds=1)).isoformat(),
        "endsAt": (now + timedelta(seconds=ends_in_seconds)).isoformat(),
        "generatorURL": "http://prometheus.invalid/graph",
    }


def summary(entry: Notification) -> tuple[str, str]:
    """(path, what it says): a Slack attachment's title, PagerDuty's action, alert count and
    summary, or a webhook's status and alert count."""
    body: Any = entry.body
    assert isinstance(body, dict), entry
    if entry.path.startswith("/slack/") or entry.path == "/watchdog":
        return entry.path, str(body["attachments"][0]["title"])
    if entry.path == "/pagerduty":
        assert body["routing_key"] == "local-alert-sink"  # read from its file, newline trimmed
        payload = body["payload"]
        count = payload["custom_details"]["num_firing"]
        return entry.path, f"{body['event_action']} {count}: {payload['summary']}"
    return entry.path, f"{body['status']} {len(body['alerts'])}"


def text_of(entry: Notification) -> str:
    """A Slack notification's message text."""
    body: Any = entry.body
    return str(body["attachments"][0]["text"])


@pytest.fixture
def sink() -> Iterator[AlertSinkServer]:
    """The recorder Alertmanager's receivers point at."""
    with serving_alert_sink() as server:
        yield server


@pytest.fixture
def alertmanager(tmp_path: Path, sink: AlertSinkServer) -> Iterator[Alertmanager]:
    """The pinned Alertmanager with the test copy of the config, stopped by pid afterwards."""
    with running_alertmanager(tmp_path, f"http://127.0.0.1:{sink.server_address[1]}") as url:
        yield Alertmanager(url=url, sink=sink)


def test_critical_suppresses_the_warning_of_the_same_alert_and_service(
    alertmanager: Alertmanager,
) -> None:
    alertmanager.post(
        alert("PaymentFailureRateHigh", "critical", "payments", "payment"),
        alert("PaymentFailureRateHigh", "warning", "payments", "payment"),
        # Same alert, another service: not inhibited.
        alert("PaymentFailureRateHigh", "warning", "trading", "trading"),
    )
    received = alertmanager.notifications(until=lambda found: len(found) >= 3)
    assert sorted(summary(entry) for entry in received) == [
        ("/pagerduty", "trigger 1: [payment] PaymentFailureRateHigh critical on payment"),
        ("/slack/payments", "[FIRING:1] PaymentFailureRateHigh | payment"),
        ("/slack/trading", "[FIRING:1] PaymentFailureRateHigh | trading"),
    ]
    payments = text_of(next(e for e in received if e.path == "/slack/payments"))
    assert "*CRITICAL* PaymentFailureRateHigh critical on payment" in payments
    assert "*WARNING*" not in payments
    states = {
        (a["labels"]["severity"], a["labels"]["service"]): a["status"]["state"]
        for a in alertmanager.alerts()
    }
    assert states == {
        ("critical", "payment"): "active",
        ("warning", "payment"): "suppressed",
        ("warning", "trading"): "active",
    }


def test_fast_burn_suppresses_the_slow_burn_of_the_same_slo(alertmanager: Alertmanager) -> None:
    def burn(speed: str, slo: str) -> dict[str, object]:
        return alert("SLOErrorBudgetBurn", "critical", "payments", "payment", slo=slo, burn=speed)

    alertmanager.post(
        burn("fast", "availability"),
        burn("slow", "availability"),
        # Another SLO of the same service burns slowly: not inhibited, its own group.
        burn("slow", "latency"),
    )
    received = alertmanager.notifications(until=lambda found: len(found) >= 4)
    assert sorted(summary(entry) for entry in received) == [
        ("/pagerduty", "trigger 1: [payment] SLOErrorBudgetBurn critical on payment"),
        ("/pagerduty", "trigger 1: [payment] SLOErrorBudgetBurn critical on payment"),
        ("/slack/payments", "[FIRING:1] SLOErrorBudgetBurn | payment | availability"),
        ("/slack/payments", "[FIRING:1] SLOErrorBudgetBurn | payment | latency"),
    ]
    availability = next(e for e in received if summary(e)[1].endswith("| availability"))
    assert "burn `fast`" in text_of(availability) and "burn `slow`" not in text_of(availability)
    suppressed = [
        (a["labels"]["slo"], a["labels"]["burn"])
        for a in alertmanager.alerts()
        if a["status"]["state"] == "suppressed"
    ]
    assert suppressed == [("availability", "slow")]


def test_alerts_of_one_group_arrive_in_one_notification(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        alert("HighLatency", "warning", "platform", "api-gateway", instance="a:8080"),
        alert("HighLatency", "warning", "platform", "api-gateway", instance="b:8080"),
        alert("HighLatency", "warning", "platform", "user-management", instance="c:8080"),
    )
    received = alertmanager.notifications(until=lambda found: len(found) >= 2)
    assert sorted(summary(entry) for entry in received) == [
        ("/slack/platform", "[FIRING:1] HighLatency | user-management"),
        ("/slack/platform", "[FIRING:2] HighLatency | api-gateway"),
    ]
    text = text_of(next(e for e in received if "api-gateway" in summary(e)[1]))
    assert text.count("*WARNING* HighLatency warning on api-gateway") == 2
    assert "<https://example.invalid/runbooks/HighLatency.md|Runbook>" in text
    assert "<http://localhost:3001/d/sre-slo-overview|Dashboard>" in text


def test_a_service_that_is_down_mutes_its_symptoms(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        alert("TargetDown", "critical", "trading", "market-data"),
        alert("MarketDataStale", "critical", "trading", "market-data"),
        # A warning "down" must not swallow another service's page, nor a page of its own.
        alert("TargetDown", "warning", "ai", "signals-exporter"),
        alert("SignalsStale", "critical", "ai", "signals-exporter"),
    )
    received = alertmanager.notifications(until=lambda found: len(found) >= 5)
    assert sorted(summary(entry) for entry in received) == [
        ("/pagerduty", "trigger 1: [market-data] TargetDown critical on market-data"),
        ("/pagerduty", "trigger 1: [signals-exporter] SignalsStale critical on signals-exporter"),
        ("/slack/ai", "[FIRING:1] SignalsStale | signals-exporter"),
        ("/slack/ai", "[FIRING:1] TargetDown | signals-exporter"),
        ("/slack/trading", "[FIRING:1] TargetDown | market-data"),
    ]


def test_watchdog_beats_to_its_own_receiver_only(alertmanager: Alertmanager) -> None:
    alertmanager.post(alert("Watchdog", "info", "sre", "prometheus"))
    received = alertmanager.notifications(until=lambda found: len(found) >= 1)
    assert [summary(entry) for entry in received] == [("/watchdog", "Watchdog")]


def test_a_drill_is_delivered_and_its_resolution_too(alertmanager: Alertmanager) -> None:
    drill = alert("MonitoringDrill", "warning", "sre", "alertmanager", drill_id="drill-test-1")
    alertmanager.post(drill)
    firing = alertmanager.notifications(until=lambda found: len(found) >= 1)
    assert [summary(entry) for entry in firing] == [("/webhook/drill", "firing 1")]
    alertmanager.post({**drill, "endsAt": datetime.now(UTC).isoformat()})
    received = alertmanager.notifications(until=lambda found: len(found) >= 2)
    assert [summary(entry) for entry in received] == [
        ("/webhook/drill", "firing 1"),
        ("/webhook/drill", "resolved 1"),
    ]
    resolved: Any = received[1].body
    assert resolved["alerts"][0]["labels"]["drill_id"] == "drill-test-1"
