"""One JSON object per log line, with ECS field names, the active span's ids, and secrets and
personal data redacted (redaction.py, generated from logs/rules.yml) before it is written."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from opentelemetry import trace

from finance_exporter.redaction import redact

# Attributes every LogRecord has; anything else was passed with `extra=` and becomes a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class EcsFormatter(logging.Formatter):
    """Formats a record as ECS JSON: @timestamp, log.level, log.logger, service.name, message,
    trace.id and span.id inside a recording span, and the `extra=` fields, all redacted."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self._service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        document: dict[str, object] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "service.name": self._service_name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:  # the refresh's or query's span (tracing.py); none when tracing is off
            document["trace.id"] = format(span.trace_id, "032x")
            document["span.id"] = format(span.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["error.stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(redact(document))


def configure(service_name: str, level: str) -> None:
    """Send all logging to stderr as ECS JSON at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(EcsFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
