"""Which alerts and notifications are a scenario's (alert_match.py): the shapes Alertmanager
0.28's /api/v2/alerts answers with and its Slack notifications take (the notifications of the
real templates are matched in test_scenario_drill.py); anything else is not the scenario's."""

from __future__ import annotations

from finance_stack.alert_match import matching, notified, receivers_of, state_of
from finance_stack.scenarios import BY_NAME


def _alert(labels: dict[str, str], state: str = "active", **why: list[str]) -> dict[str, object]:
    status = {"state": state, "inhibitedBy": [], "silencedBy": [], "mutedBy": [], **why}
    receivers = [{"name": "trading"}, {"name": "trading-pagerduty"}]
    return {"labels": labels, "status": status, "receivers": receivers, "fingerprint": "f"}


def test_an_alert_is_the_scenarios_with_its_name_and_every_expected_label() -> None:
    scenario = BY_NAME["market-data-feed-stalled"]
    ours = {"alertname": "MarketDataStale", **scenario.labels, "category": "trading"}
    listing = [
        _alert(ours),
        _alert({**ours, "provider": "oanda"}),
        _alert({**ours, "alertname": "ServiceDown"}),
        {"labels": "not a mapping"},
        "not an alert",
    ]
    assert matching(listing, scenario) == [listing[0]]
    assert matching({"not": "a list"}, scenario) == []
    assert receivers_of(listing[0]) == ["trading", "trading-pagerduty"]


def test_a_suppressed_alert_says_what_suppresses_it() -> None:
    labels = {"alertname": "MarketDataStale"}
    assert state_of(_alert(labels)) == ("active", "")
    muted = _alert(labels, "suppressed", mutedBy=["fx-open"], inhibitedBy=["abc"])
    assert state_of(muted) == ("suppressed", "inhibited by abc; muted by time interval fx-open")
    assert state_of({"labels": labels}) == ("unknown", "")


def _slack(title: str, *owners: str) -> dict[str, object]:
    return {"attachments": [{"title": title, "text": "\n".join(owners)}]}


def test_a_notification_of_another_service_slo_or_burn_is_not_the_scenarios() -> None:
    scenario = BY_NAME["payment-errors"]
    owner = "team `payments` | category `slo` | service `payment` | burn `fast`"
    ours = "[FIRING:1] SLOErrorBudgetBurn | payment | availability"
    assert notified(_slack(ours, owner), scenario) == "firing"
    assert notified(_slack(ours.replace("FIRING:1", "RESOLVED"), owner), scenario) == "resolved"
    for title, line in (
        (ours.replace("| payment", "| trading"), owner),
        (ours.replace("availability", "latency"), owner),
        (ours, owner.replace("fast", "slow")),
        (ours, owner.replace("`payments`", "`platform`")),
        (ours.replace("SLOErrorBudgetBurn", "ServiceDown"), owner),
    ):
        assert notified(_slack(title, line), scenario) is None, (title, line)
    assert notified({"text": "not a slack message"}, scenario) is None
