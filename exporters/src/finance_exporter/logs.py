"""One JSON object per log line, with ECS field names."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Attributes every LogRecord has; anything else was passed with `extra=` and becomes a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class EcsFormatter(logging.Formatter):
    """Formats a record as ECS JSON: @timestamp, log.level, log.logger, service.name, message."""

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
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["error.stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure(service_name: str, level: str) -> None:
    """Send all logging to stderr as ECS JSON at `level`."""
    handler = logging.StreamHandler()
    handler.setFormatter(EcsFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
