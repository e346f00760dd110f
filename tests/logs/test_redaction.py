"""Every redaction class redacts what it should and leaves what it should not, in text and in
field names, at any depth; and an event comes out in ECS shape (nested objects)."""

from __future__ import annotations

import pytest

from logs.samples import CARD, CASES, EDGES, SECRET_FIELDS
from monitoring import logs
from monitoring.logs import redaction


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_class_redacts_its_positive_case(name: str, rules: logs.Rules) -> None:
    (text, redacted), _ = CASES[name]
    only = [c for c in rules.redactions if c.name == name]
    assert redaction.redact_text(text, only) == redacted
    assert redaction.redact_text(text, rules.redactions) == redacted


@pytest.mark.parametrize("name", sorted(CASES))
def test_no_class_touches_a_negative_case(name: str, rules: logs.Rules) -> None:
    _, negative = CASES[name]
    assert redaction.redact_text(negative, rules.redactions) == negative


@pytest.mark.parametrize("field", sorted(SECRET_FIELDS))
def test_a_secret_field_loses_its_whole_value(field: str, rules: logs.Rules) -> None:
    _, event = logs.evaluate(rules, {"message": "m", field: {"any": ["thing", 1]}})
    node = event
    for part in field.split("."):
        node = node[part]
    assert node == SECRET_FIELDS[field]


def test_strings_are_redacted_at_any_depth(rules: logs.Rules) -> None:
    _, event = logs.evaluate(rules, {"labels": {"notes": [f"card {CARD}", {"x": f"{CARD}"}]}})
    assert event["labels"] == {"notes": ["card [REDACTED:pan]", {"x": "[REDACTED:pan]"}]}


def test_numbers_booleans_and_null_are_kept(rules: logs.Rules) -> None:
    _, event = logs.evaluate(rules, {"order.id": 4111111111111111, "ok": True, "none": None})
    assert event == {"order": {"id": 4111111111111111}, "ok": True, "none": None}


def test_redacting_twice_changes_nothing_more(rules: logs.Rules) -> None:
    for (text, _), negative in CASES.values():
        for sample in (text, negative, *EDGES):
            once = redaction.redact_text(sample, rules.redactions)
            assert redaction.redact_text(once, rules.redactions) == once


def test_luhn_accepts_card_numbers_and_rejects_near_misses() -> None:
    assert redaction.luhn("4111111111111111")
    assert redaction.luhn("378282246310005")
    assert not redaction.luhn("4111111111111112")


def test_dotted_keys_become_ecs_objects(rules: logs.Rules) -> None:
    flat = {
        "@timestamp": "2026-12-02T12:00:00.000Z",
        "log.level": "info",
        "log.logger": "finance_demo.platform.http",
        "service.name": "payment",
        "trace.id": "0af7651916cd43dd8448eb211c80319c",
        "span.id": "b7ad6b7169203331",
        "http.response.status_code": 201,
        "message": "request served",
    }
    _, event = logs.evaluate(rules, flat)
    assert event == {
        "@timestamp": "2026-12-02T12:00:00.000Z",
        "log": {"level": "info", "logger": "finance_demo.platform.http"},
        "service": {"name": "payment"},
        "trace": {"id": "0af7651916cd43dd8448eb211c80319c"},
        "span": {"id": "b7ad6b7169203331"},
        "http": {"response": {"status_code": 201}},
        "message": "request served",
    }


def test_dotted_keys_merge_into_an_existing_object_without_changing_the_input(
    rules: logs.Rules,
) -> None:
    event = {"log": {"file": {"path": "/var/log/x"}}, "log.level": "warning"}
    _, nested = logs.evaluate(rules, event)
    assert nested == {"log": {"file": {"path": "/var/log/x"}, "level": "warning"}}
    assert event == {"log": {"file": {"path": "/var/log/x"}}, "log.level": "warning"}


def test_a_key_that_cannot_nest_stays_and_the_event_is_tagged(rules: logs.Rules) -> None:
    # "service" is already a string: [service][name] cannot be set, so Elasticsearch would
    # reject the document; it keeps its dotted key and goes on to the dead-letter queue.
    _, event = logs.evaluate(rules, {"service": "payment", "service.name": "payment"})
    assert event == {"service": "payment", "service.name": "payment", "tags": ["_ecs_conflict"]}
