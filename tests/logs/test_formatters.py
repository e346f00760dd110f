"""The exporters' and the demo's ECS formatters redact every class of logs/rules.yml before a
line is written, in the message, in every field and in a traceback, and carry the active span's
trace.id and span.id."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import PurePosixPath

import pytest
from opentelemetry.sdk.trace import TracerProvider

from finance_demo.platform import logs as demo_logs
from finance_exporter import logs as exporter_logs
from logs.samples import CARD, CASES, EMAIL, PASSWORD, SECRET_FIELDS, STRIPE_KEY

FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {
    "exporter": lambda: exporter_logs.EcsFormatter("finance-exporter-revenue"),
    "demo": demo_logs.EcsFormatter,
}
PLANTED = [CARD, EMAIL, PASSWORD, STRIPE_KEY, "dXNlcjpwYXNz", "the secret itself"]


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("finance.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def _line(kind: str, record: logging.LogRecord) -> dict[str, object]:
    line = FORMATTERS[kind]().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("kind", sorted(FORMATTERS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_message_of_every_class_is_redacted(kind: str, case: str) -> None:
    (text, redacted), negative = CASES[case]
    assert _line(kind, _record("%s", text))["message"] == redacted
    assert _line(kind, _record(negative))["message"] == negative


@pytest.mark.parametrize("kind", sorted(FORMATTERS))
def test_no_planted_secret_survives_in_fields_or_traceback(kind: str) -> None:
    fields = {field: "the secret itself" for field in SECRET_FIELDS}
    try:
        raise ValueError(f"charge of {CARD} for {EMAIL} failed")
    except ValueError:
        record = _record(
            "user %s paid with %s",
            EMAIL,
            CARD,
            **fields,
            **{"url.query": f"password={PASSWORD}&key={STRIPE_KEY}"},
            **{"file.path": PurePosixPath(f"/tmp/{EMAIL}")},  # not JSON: written as str()
            **{"labels.cards": [CARD, {"nested": EMAIL}]},
        )
        record.exc_info = sys.exc_info()
    document = _line(kind, record)
    text = json.dumps(document)
    assert [secret for secret in PLANTED if secret in text] == []
    assert document["message"] == "user [REDACTED:email] paid with [REDACTED:pan]"
    assert {field: document[field] for field in SECRET_FIELDS} == SECRET_FIELDS
    assert document["url.query"] == "password=[REDACTED:secret]&key=[REDACTED:token]"
    assert document["file.path"] == "/tmp/[REDACTED:email]"
    assert document["labels.cards"] == ["[REDACTED:pan]", {"nested": "[REDACTED:email]"}]
    assert "[REDACTED:pan] for [REDACTED:email] failed" in str(document["error.stack_trace"])


@pytest.mark.parametrize("kind", sorted(FORMATTERS))
def test_the_active_span_ids_are_on_the_line(kind: str) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("refresh revenue") as span:
        document = _line(kind, _record("refreshed"))
    context = span.get_span_context()
    assert document["trace.id"] == format(context.trace_id, "032x")
    assert document["span.id"] == format(context.span_id, "016x")
    assert "trace.id" not in _line(kind, _record("outside a span"))


@pytest.mark.parametrize("kind", sorted(FORMATTERS))
def test_the_ecs_fields_are_kept(kind: str) -> None:
    document = _line(kind, _record("served", **{"http.response.status_code": 503}))
    assert document["log.level"] == "warning"
    assert document["log.logger"] == "finance.test"
    assert document["http.response.status_code"] == 503
    assert str(document["@timestamp"]).endswith("Z")
