"""The local alert receiver: records every notification Alertmanager sends to it.

With no Slack webhook or PagerDuty key configured, every receiver of alertmanager.yml points
here (`python3 -m finance_stack alert-sink`), so the alerting pipeline can be proven end to end
without any SaaS. It keeps the last notifications in memory only: a restart forgets them, which
is fine for a drill and for tests, and it never grows without bound.

  POST <any path>                 record {kind: "http", path, receiver, time, body}; answer as
                                  Slack does
  SMTP on --smtp-listen           record {kind: "email", path: "/email", receiver: "email",
                                  time, body: the message (finance_stack.mail.Mail)}
  GET  /notifications[?receiver=][&kind=]
                                  the recorded notifications, oldest first, as a JSON list
  GET  /healthz                   200 "ok"
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socketserver
import sys
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from finance_stack.mail import Mail
from finance_stack.smtp_sink import SmtpSinkServer

logger = logging.getLogger(__name__)

MAX_NOTIFICATIONS = 1000
# Alertmanager's largest bodies (a group of many alerts, PagerDuty's details) stay far below this.
MAX_BODY_BYTES = 1024 * 1024
# Slack's API answers {"ok": true}; newer Alertmanagers check it, PagerDuty and webhooks only
# look at the status code.
_ACCEPTED = json.dumps({"ok": True, "status": "success"}).encode()

JsonValue = dict[str, object] | list[object] | str | int | float | bool | None

# How a notification arrived: a POST to the HTTP side, or a message to the SMTP side.
HTTP = "http"
EMAIL = "email"
# An email has no URL: it is recorded under this path, so ?receiver=email lists the emails.
EMAIL_PATH = "/email"


@dataclass(frozen=True)
class Notification:
    """One POST or email as it was received."""

    kind: str
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

    def add(self, path: str, body: JsonValue, kind: str = HTTP) -> Notification:
        """Record one notification, dropping the oldest when full."""
        entry = Notification(
            kind=kind,
            path=path,
            receiver=receiver_of(path),
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            body=body,
        )
        with self._lock:
            self._entries.append(entry)
        return entry

    def add_mail(self, mail: Mail) -> Notification:
        """Record one email accepted by the SMTP side."""
        return self.add(EMAIL_PATH, asdict(mail), kind=EMAIL)

    def list(self, receiver: str | None = None, kind: str | None = None) -> list[Notification]:
        """Every recorded notification, oldest first; only one receiver's or kind's if given."""
        with self._lock:
            entries = list(self._entries)
        return [
            e
            for e in entries
            if (receiver is None or e.receiver == receiver) and (kind is None or e.kind == kind)
        ]


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
            query = parse_qs(url.query)
            receiver, kind = (query.get(name, [None])[0] for name in ("receiver", "kind"))
            entries = [asdict(e) for e in self.server.log.list(receiver, kind)]
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


def make_smtp_server(listen: str, log: NotificationLog) -> SmtpSinkServer:
    """Bind the sink's SMTP side, recording into `log`; the caller runs serve_forever()."""
    return SmtpSinkServer(parse_listen(listen), log.add_mail)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with ECS field names."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        document = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
            **(fields if isinstance(fields, dict) else {}),
        }
        return json.dumps(document)


def _listening(message: str, server: socketserver.TCPServer) -> None:
    host, port = server.server_address[:2]
    logger.info(message, extra={"fields": {"server.address": str(host), "server.port": port}})


def main(argv: list[str]) -> int:
    """`alert-sink --listen HOST:PORT [--smtp-listen HOST:PORT]`: serve the local alert receiver
    until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="finance_stack alert-sink",
        description="Record the notifications Alertmanager sends (GET /notifications lists them).",
        epilog="exit status: 0 stopped, 1 cannot listen, 2 usage error",
    )
    parser.add_argument(
        "--listen",
        required=True,
        help="HOST:PORT to listen on (docker-compose.yml gives the alert-sink service's)",
    )
    parser.add_argument(
        "--smtp-listen",
        metavar="HOST:PORT",
        help="also accept email on HOST:PORT (SMTP, no TLS, no AUTH) and record each message",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    smtp: SmtpSinkServer | None = None
    try:
        if args.smtp_listen is not None:
            parse_listen(args.smtp_listen)  # a usage error before anything is bound
        server = make_server(args.listen)
        if args.smtp_listen is not None:
            try:
                smtp = make_smtp_server(args.smtp_listen, server.log)
            except OSError:
                server.server_close()
                raise
    except (ValueError, OSError) as err:
        print(f"finance_stack alert-sink: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1

    # As PID 1 in a container, SIGTERM has no default action: stop on it explicitly.
    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    _listening("alert-sink listening", server)
    smtp_thread: threading.Thread | None = None
    if smtp is not None:
        _listening("alert-sink smtp listening", smtp)
        smtp_thread = threading.Thread(target=smtp.serve_forever, name="smtp", daemon=True)
        smtp_thread.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if smtp is not None and smtp_thread is not None:
            smtp.shutdown()
            smtp.server_close()
        server.server_close()
    return 0
