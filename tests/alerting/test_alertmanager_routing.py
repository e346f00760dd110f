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
from support.servers import serving_alert_sink, serving_smtp_sink

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
    """(where, what it says): a Slack attachment's title; PagerDuty's routing key, action, alert
    count and summary; an email's recipients and subject; a webhook's status and alert count."""
    body: Any = entry.body
    assert isinstance(body, dict), entry
    if entry.kind == "email":
        return f"mail to {','.join(body['rcpt_to'])}", str(body["headers"]["Subject"])
    if entry.path.startswith("/slack/"):
        return entry.path, str(body["attachments"][0]["title"])
    if entry.path == "/pagerduty":
        payload = body["payload"]
        count = payload["custom_details"]["num_firing"]
        # The key is read from the team's file, newline trimmed: it says whose service it is.
        return (
            entry.path,
            f"{body['routing_key']} {body['event_action']} {count}: {payload['summary']}",
        )
    return entry.path, f"{body['status']} {len(body['alerts'])}"


def text_of(entry: Notification) -> str:
    """A Slack notification's message text."""
    body: Any = entry.body
    return str(body["attachments"][0]["text"])


@pytest.fixture
def sink() -> Iterator[AlertSinkServer]:
    """The recorder Alertmanager's receivers point at: HTTP and SMTP into one log."""
    with serving_alert_sink() as server, serving_smtp_sink(server.log) as smtp:
        server.smtp_address = f"127.0.0.1:{smtp.server_address[1]}"  # type: ignore[attr-defined]
        yield server


def start(tmp_path: Path, sink: AlertSinkServer, edit: Callable[[str], str] | None = None) -> Any:
    return running_alertmanager(
        tmp_path,
        f"http://127.0.0.1:{sink.server_address[1]}",
        smtp=sink.smtp_address,  # type: ignore[attr-defined]
        edit=edit,
    )


@pytest.fixture
def alertmanager(tmp_path: Path, sink: AlertSinkServer) -> Iterator[Alertmanager]:
    """The pinned Alertmanager with the test copy of the config, stopped by pid afterwards."""
    with start(tmp_path, sink) as url:
        yield Alertmanager(url=url, sink=sink)


def page(team: str, summary_: str, service: str) -> list[tuple[str, str]]:
    """What one critical alert of `team` sends: its PagerDuty service, its mailbox, its channel
    (the Slack part is added by the caller, with its title)."""
    return [
        ("/pagerduty", f"local-{team} trigger 1: [{service}] {summary_}"),
        (f"mail to {team}-oncall@ai-finance.example", f"[FIRING:1] CRITICAL {service}: {summary_}"),
    ]


def test_critical_suppresses_the_warning_of_the_same_alert_and_service(
    alertmanager: Alertmanager,
) -> None:
    alertmanager.post(
        alert("PaymentFailureRateHigh", "critical", "payments", "payment"),
        alert("PaymentFailureRateHigh", "warning", "payments", "payment"),
        # Same alert, another service: not inhibited.
        alert("PaymentFailureRateHigh", "warning", "trading", "trading"),
    )
    received = alertmanager.notifications(until=lambda found: len(found) >= 4)
    assert sorted(summary(entry) for entry in received) == sorted(
        [
            *page("payments", "PaymentFailureRateHigh critical on payment", "payment"),
            ("/slack/payments", "[FIRING:1] PaymentFailureRateHigh | payment"),
            ("/slack/trading", "[FIRING:1] PaymentFailureRateHigh | trading"),
        ]
    )
    payments = text_of(next(e for e in received if e.path == "/slack/payments"))
    assert "*CRITICAL* PaymentFailureRateHigh critical on payment" in payments
    assert "*WARNING*" not in payments
    mail: Any = next(e for e in received if e.kind == "email").body
    assert "PaymentFailureRateHigh" in mail["html"] and mail["headers"]["From"] == (
        "alertmanager@ai-finance.example"
    )
    states = {
        (a["labels"]["severity"], a["labels"]["service"]): a["status"]["state"]
        for a in alertmanager.alerts()
    }
    assert states == {
        ("critical", "payment"): "active",
        ("warning", "payment"): "suppressed",
        ("warning", "trading"): "active",
    }


def test_one_monitors_certificate_does_not_mute_anothers(alertmanager: Alertmanager) -> None:
    def cert(severity: str, monitor: str) -> dict[str, object]:
        return alert(
            "UptimeKumaCertificateExpiring", severity, "sre", "uptime-kuma", monitor_name=monitor
        )

    alertmanager.post(cert("critical", "api"), cert("warning", "api"), cert("warning", "www"))
    alertmanager.notifications(until=lambda found: len(found) >= 4)
    states = {
        (a["labels"]["severity"], a["labels"]["monitor_name"]): a["status"]["state"]
        for a in alertmanager.alerts()
    }
    assert states == {
        ("critical", "api"): "active",
        ("warning", "api"): "suppressed",
        ("warning", "www"): "active",
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
    received = alertmanager.notifications(until=lambda found: len(found) >= 6)
    slack = [s for s in map(summary, received) if s[0].startswith("/slack/")]
    assert sorted(slack) == [
        ("/slack/payments", "[FIRING:1] SLOErrorBudgetBurn | payment | availability"),
        ("/slack/payments", "[FIRING:1] SLOErrorBudgetBurn | payment | latency"),
    ]
    assert len(received) == 6  # two pages, each to PagerDuty, email and Slack
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
        alert("ServiceDown", "critical", "trading", "market-data"),
        alert("MarketDataStale", "critical", "trading", "market-data", provider="binance"),
        alert(
            "SLOErrorBudgetBurn", "critical", "trading", "market-data", slo="latency", burn="fast"
        ),
        alert("TargetDown", "warning", "sre", "market-data", instance="demo-platform:8084"),
        # A warning "down" must not swallow another service's page, nor a page of its own.
        alert("TargetDown", "warning", "sre", "signals-exporter"),
        alert("SignalsStale", "critical", "ai", "signals-exporter"),
    )
    received = alertmanager.notifications(until=lambda found: len(found) >= 7)
    assert sorted(summary(entry) for entry in received) == sorted(
        [
            *page("trading", "ServiceDown critical on market-data", "market-data"),
            ("/slack/trading", "[FIRING:1] ServiceDown | market-data"),
            *page("ai", "SignalsStale critical on signals-exporter", "signals-exporter"),
            ("/slack/ai", "[FIRING:1] SignalsStale | signals-exporter"),
            ("/slack/sre", "[FIRING:1] TargetDown | signals-exporter"),
        ]
    )


def test_a_datastore_down_mutes_only_its_own_queries(alertmanager: Alertmanager) -> None:
    def exporter(name: str, severity: str, source: str) -> dict[str, object]:
        return alert(name, severity, "sre", "revenue-exporter", source=source, exporter="revenue")

    alertmanager.post(
        exporter("ExporterDatastoreDown", "critical", "redis"),
        exporter("ExporterQueryErrors", "warning", "redis"),
        exporter("ExporterQueryErrors", "warning", "postgres"),
    )
    alertmanager.notifications(until=lambda found: len(found) >= 4)
    states = {
        (a["labels"]["alertname"], a["labels"]["source"]): a["status"]["state"]
        for a in alertmanager.alerts()
    }
    assert states == {
        ("ExporterDatastoreDown", "redis"): "active",
        ("ExporterQueryErrors", "redis"): "suppressed",
        ("ExporterQueryErrors", "postgres"): "active",
    }


def test_a_failing_integration_is_not_told_through_itself(alertmanager: Alertmanager) -> None:
    alertmanager.post(
        alert(
            "AlertmanagerNotificationFailures",
            "critical",
            "sre",
            "alertmanager",
            integration="slack",
        )
    )
    received = alertmanager.notifications(until=lambda found: len(found) >= 2)
    assert sorted(summary(entry) for entry in received) == sorted(
        page("sre", "AlertmanagerNotificationFailures critical on alertmanager", "alertmanager")
    )


def test_watchdog_beats_to_its_own_receiver_only(alertmanager: Alertmanager) -> None:
    alertmanager.post(alert("Watchdog", "info", "sre", "prometheus"))
    received = alertmanager.notifications(until=lambda found: len(found) >= 1)
    # A webhook: any 2xx reply is a success (heartbeat services answer `OK`, not Slack's `ok`).
    assert [summary(entry) for entry in received] == [("/watchdog", "firing 1")]


def only_open(weekday: str) -> Callable[[str], str]:
    """An edit of the config: US equities open on `weekday` only, all day (UTC)."""

    def edit(text: str) -> str:
        start = text.index("  - name: us-equities-open\n")
        end = text.index("  - name: fx-open\n")
        return (
            text[:start]
            + f"  - name: us-equities-open\n    time_intervals:\n      - weekdays: [{weekday}]\n"
            + text[end:]
        )

    return edit


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@pytest.mark.parametrize("market_open", [True, False], ids=["open", "closed"])
def test_market_hours_mute_stale_market_data_only_while_closed(
    tmp_path: Path, sink: AlertSinkServer, market_open: bool
) -> None:
    today = datetime.now(UTC).weekday()
    # Tomorrow, not a fixed day: the test must not depend on when it runs (a run across midnight
    # UTC could see the interval change; it takes seconds).
    weekday = WEEKDAYS[today if market_open else (today + 1) % 7]
    with start(tmp_path, sink, edit=only_open(weekday)) as url:
        am = Alertmanager(url=url, sink=sink)
        am.post(
            alert("MarketDataStale", "critical", "trading", "market-data", provider="polygon"),
            # Crypto never closes.
            alert("MarketDataStale", "critical", "trading", "market-data", provider="binance"),
        )
        received = am.notifications(until=lambda found: len(found) >= (6 if market_open else 3))
    assert len(received) == (6 if market_open else 3)
    kinds = sorted(summary(entry)[0] for entry in received)
    expected = ["/pagerduty", "/slack/trading", "mail to trading-oncall@ai-finance.example"]
    assert kinds == sorted(expected * (2 if market_open else 1))
    paged = sorted(
        provider
        for entry in received
        if entry.path == "/pagerduty"
        for provider in ("polygon", "binance")
        if f"provider = {provider}" in entry.body["payload"]["custom_details"]["firing"]  # type: ignore[index, call-overload]
    )
    assert paged == (["binance", "polygon"] if market_open else ["binance"])
