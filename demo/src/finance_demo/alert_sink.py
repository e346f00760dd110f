"""The local alert receiver: records every notification Alertmanager sends to it.

With no Slack webhook or PagerDuty key configured, every receiver of alertmanager.yml points
here (`finance-demo alert-sink`), so the alerting pipeline can be proven end to end without any
SaaS. It keeps the last notifications in memory only: a restart forgets them, which is fine for
a drill and for tests, and it never grows without bound.

  POST <any path>                 record {path, receiver, time, body}; answer as Slack does
  GET  /notifications[?receiver=] the recorded notifications, oldest first, as a JSON list
  GET  /healthz                   200 "ok"
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9095
MAX_NOTIFICATIONS = 1000
# Alertmanager's largest bodies (a group of many alerts, PagerDuty's details) stay far below this.
MAX_BODY_BYTES = 1024 * 1024
# Slack's API answers {"ok": true}; newer Alertmanagers check it, PagerDuty and webhooks only
# look at the status code.
_ACCEPTED = json.dumps({"ok": True, "status": "success"}).encode()

JsonValue = dict[str, object] | list[object] | str | int | float | bool | None


@dataclass(frozen=True)
class Notification:
    """One POST as it was received."""

    path: str
    receiver: str
    time: str
    body: JsonValue


def receiver_of(path: str) -> str:
    """The receiver a path stands for: its last segment (/slack/sre -> sre, /pagerduty)."""
    segments = [segment for segment in path.split("/") if segment]
    return segments[-1] if segments else ""


class NotificationLog:
    """The last `capacity` notifications, safe to use from the server's threads."""

    def __init__(self, capacity: int = MAX_NOTIFICATIONS) -> None:
        self._entries: deque[Notification] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, path: str, body: JsonValue) -> Notification:
        """Record one notification, dropping the oldest when full."""
        entry = Notification(
            path=path,
            receiver=receiver_of(path),
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            body=body,
        )
        with self._lock:
            self._entries.append(entry)
        return entry

    def list(self, receiver: str | None = None) -> list[Notification]:
        """Every recorded notification, oldest first; only one receiver's if given."""
        with self._lock:
            entries = list(self._entries)
        return [e for e in entries if receiver is None or e.receiver == receiver]


class _Handler(BaseHTTPRequestHandler):
    server: AlertSinkServer
    server_version = "finance-alert-sink"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b'{"ok": false}')
            return
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        try:
            body: JsonValue = json.loads(raw) if raw else None
        except ValueError:
            body = raw  # kept as text: the point is to see what arrived
        path = urlsplit(self.path).path
        self.server.log.add(path, body)
        logger.info("notification received", extra={"fields": {"url.path": path}})
        self._reply(HTTPStatus.OK, _ACCEPTED)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/healthz":
            self._reply(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif url.path == "/notifications":
            receiver = parse_qs(url.query).get("receiver", [None])[0]
            entries = [asdict(e) for e in self.server.log.list(receiver)]
            self._reply(HTTPStatus.OK, json.dumps(entries).encode())
        else:
            self._reply(HTTPStatus.NOT_FOUND, b'{"error": "not found"}')

    def _reply(
        self, status: HTTPStatus, body: bytes, content_type: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one log line per notification is enough (see do_POST)."""


class AlertSinkServer(ThreadingHTTPServer):
    """A threaded HTTP server that records into `log`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], log: NotificationLog) -> None:
        super().__init__(address, _Handler)
        self.log = log


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` (or `:port`, meaning every address) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen address must be HOST:PORT, got {text!r}")
    return host or "0.0.0.0", int(port)


def make_server(listen: str, capacity: int = MAX_NOTIFICATIONS) -> AlertSinkServer:
    """Bind the sink (port 0 picks a free one); the caller runs serve_forever()."""
    return AlertSinkServer(parse_listen(listen), NotificationLog(capacity))
