"""ECS JSON logs on stdout, one object per line, with the service and the current trace, and
secrets and personal data redacted (redaction.py, generated from logs/rules.yml) first."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

from finance_demo.platform.redaction import redact
from finance_demo.platform.tracing import trace_ids

# Attributes every LogRecord has; anything else was passed with `extra=` and becomes a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

# One process hosts five services: the request being served says which one is logging.
current_service: contextvars.ContextVar[str] = contextvars.ContextVar(
    "current_service", default="demo-platform"
)


class EcsFormatter(logging.Formatter):
    """@timestamp, log.level, log.logger, service.name, message, trace.id, span.id, fields;
    every string redacted, a secret field's whole value replaced."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        document: dict[str, object] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "service.name": current_service.get(),
            "message": record.getMessage(),
        }
        trace_id, span_id = trace_ids()
        if trace_id is not None:
            document["trace.id"] = trace_id
            document["span.id"] = span_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["error.stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(redact(document))


def configure(level: str = "INFO", default_service: str | None = None) -> None:
    """Send all logging to stdout as ECS JSON at `level`."""
    if default_service is not None:
        current_service.set(default_service)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(EcsFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
