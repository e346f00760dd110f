"""HTTP endpoints: /metrics (a snapshot, within the scrape deadline) and /healthz (no I/O)."""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from finance_exporter.collector import SnapshotCollector
from finance_exporter.snapshot import Clock, Refresher

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"

_INDEX = b"""<html><head><title>finance exporter</title></head><body>
<h1>finance exporter</h1><p><a href="/metrics">/metrics</a> <a href="/healthz">/healthz</a></p>
</body></html>
"""


# Connections the kernel queues before the server accepts them. socketserver's default of 5
# overflows with 8 or more concurrent scrapers; the clients then retry after 1, 3 and 7 seconds,
# which was the whole 2-8 s scrape tail measured in issue 15. Linux caps it at somaxconn (4096).
LISTEN_BACKLOG = 128


class ExporterServer(ThreadingHTTPServer):
    """A threaded HTTP server that knows the refresher and how long a scrape may take."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        refresher: Refresher,
        clock: Clock,
        default_timeout_seconds: float,
        timeout_offset_seconds: float,
    ) -> None:
        super().__init__(address, _Handler)
        self.refresher = refresher
        self.clock = clock
        self.default_timeout_seconds = default_timeout_seconds
        self.timeout_offset_seconds = timeout_offset_seconds

    def deadline(self, header: str | None) -> float:
        """Monotonic time by which a scrape must have its snapshot."""
        timeout = self.default_timeout_seconds
        if header:
            try:
                timeout = min(float(header), self.default_timeout_seconds)
            except ValueError:
                pass
        return self.clock.monotonic() + max(timeout - self.timeout_offset_seconds, 0.0)


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/healthz":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif path == "/":
            self._send(200, "text/html; charset=utf-8", _INDEX)
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _metrics(self) -> None:
        server = self.server
        snapshot = server.refresher.get(server.deadline(self.headers.get(SCRAPE_TIMEOUT_HEADER)))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(
            SnapshotCollector(snapshot, server.clock.time(), server.clock.monotonic())
        )
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        self._send(200, content_type, encoder(registry))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Access logs would be one line per scrape; state changes are logged elsewhere.
        return
