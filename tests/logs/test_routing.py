"""Every kind of event the platform logs reaches the indices it belongs in (logs/rules.yml), as
the Logstash pipeline routes it: the events are shaped as the formatters write them (flat,
dotted ECS keys), and evaluated after nesting and redaction, like main.conf does."""

from __future__ import annotations

from typing import Any

import pytest

from monitoring import logs

BASE = {"@timestamp": "2026-12-02T12:00:00.000Z", "log.logger": "x", "message": "m"}

EVENTS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "gateway request served": (
        {"log.level": "info", "service.name": "api-gateway", "http.response.status_code": 200},
        set(),
    ),
    "gateway 502 (a warning, but a server error)": (
        {"log.level": "warning", "service.name": "api-gateway", "http.response.status_code": 502},
        {"ai-finance-errors"},
    ),
    "payment captured": (
        {"log.level": "info", "service.name": "payment", "http.response.status_code": 201},
        {"ai-finance-revenue"},
    ),
    "payment crashed": (
        {"log.level": "error", "service.name": "payment", "error.stack_trace": "Traceback"},
        {"ai-finance-errors", "ai-finance-revenue"},
    ),
    "failed login": (
        {
            "log.level": "warning",
            "service.name": "user-management",
            "event.category": ["authentication"],
            "event.action": "user-login",
            "event.outcome": "failure",
        },
        {"ai-finance-security"},
    ),
    "category as a plain string": (
        {"log.level": "info", "service.name": "sso", "event.category": "iam"},
        {"ai-finance-security"},
    ),
    "order placed": ({"log.level": "info", "service.name": "trading"}, {"ai-finance-trading"}),
    "market-data feed failed": (
        {"log.level": "error", "service.name": "market-data", "error.message": "timeout"},
        {"ai-finance-errors", "ai-finance-trading"},
    ),
    "signals exporter refreshed": (
        {"log.level": "info", "service.name": "finance-exporter-signals"},
        {"ai-finance-trading"},
    ),
    "portfolio exporter query failing": (
        {"log.level": "warning", "service.name": "finance-exporter-portfolio", "error.type": "t"},
        {"ai-finance-errors", "ai-finance-trading"},
    ),
    "revenue exporter connected": (
        {"log.level": "info", "service.name": "finance-exporter-revenue"},
        {"ai-finance-revenue"},
    ),
    "datastore unavailable (a warning with an error)": (
        {"log.level": "warning", "service.name": "demo-platform", "error.message": "refused"},
        {"ai-finance-errors"},
    ),
    "critical from anywhere": (
        {"log.level": "critical", "service.name": "demo-load"},
        {"ai-finance-errors"},
    ),
    "status code as a string": (
        {"log.level": "info", "service.name": "demo-load", "http.response.status_code": "503"},
        {"ai-finance-errors"},
    ),
    "already nested (a Beats event decoded by Filebeat)": (
        {"log": {"level": "error"}, "service": {"name": "trading"}},
        {"ai-finance-errors", "ai-finance-trading"},
    ),
}


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_every_kind_of_event_reaches_its_indices(name: str, rules: logs.Rules) -> None:
    event, expected = EVENTS[name]
    indices, _ = logs.evaluate(rules, {**BASE, **event})
    assert indices[0] == "ai-finance-logs"  # everything goes to the general index
    assert set(indices[1:]) == expected


def test_an_empty_or_false_field_does_not_count_as_present(rules: logs.Rules) -> None:
    for value in ("", False, "false", None):
        indices, _ = logs.evaluate(rules, {**BASE, "log.level": "info", "error.message": value})
        assert indices == ("ai-finance-logs",), value


def test_contains_reads_a_string_as_logstash_does_a_substring(rules: logs.Rules) -> None:
    # `"iam" in [event][category]` is a substring test on a string (EventCondition 8.18).
    indices, _ = logs.evaluate(rules, {**BASE, "event.category": "siam"})
    assert "ai-finance-security" in indices
    indices, _ = logs.evaluate(rules, {**BASE, "event.category": ["siam"]})
    assert "ai-finance-security" not in indices


def test_a_service_name_that_only_contains_a_route_value_is_not_routed(
    rules: logs.Rules,
) -> None:
    # `[service][name] in [...]` compares whole strings.
    indices, _ = logs.evaluate(rules, {**BASE, "service.name": "payment-gateway"})
    assert indices == ("ai-finance-logs",)
