"""HTTP endpoints: /metrics (a snapshot, within the scrape deadline) and /healthz (no I/O)."""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

from finance_exporter.exposition import Exposition
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

# Threads that answer requests. A scrape costs well under a millisecond of CPU once its snapshot
# is rendered, and the one that refreshes holds its thread for the refresh; more threads than
# this would only queue on the GIL. Past them, new connections wait in the listen backlog.
WORKERS = 8

# A client that connects and then sends nothing holds a worker this long at most.
REQUEST_READ_TIMEOUT_SECONDS = 10.0


class ExporterServer(HTTPServer):
    """An HTTP server on a bounded pool of threads that knows the exposition and the deadline.

    socketserver's ThreadingMixIn starts a thread per connection, without bound. Here the accept
    loop hands each connection to one of WORKERS threads and stops accepting while all are busy,
    so a burst of scrapers waits in the kernel's listen backlog instead of growing threads.
    """

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
        self.exposition = Exposition(refresher, clock)
        self.clock = clock
        self.default_timeout_seconds = default_timeout_seconds
        self.timeout_offset_seconds = timeout_offset_seconds
        self._workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="http")
        self._idle = threading.BoundedSemaphore(WORKERS)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        """Hand the connection to an idle worker, waiting for one first."""
        self._idle.acquire()
        self._workers.submit(self._serve, request, client_address)

    def _serve(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._idle.release()

    def server_close(self) -> None:
        """Stop listening, then let the workers finish the requests they hold."""
        super().server_close()
        self._workers.shutdown(wait=True)

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
    # HTTP/1.0 (the default): one request per connection, so an idle keep-alive connection
    # never holds a worker between scrapes.
    timeout = REQUEST_READ_TIMEOUT_SECONDS

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
        body = server.exposition.body(
            server.deadline(self.headers.get(SCRAPE_TIMEOUT_HEADER)),
            self.headers.get("Accept", ""),
            self.headers.get("Accept-Encoding", ""),
        )
        self._send(200, body.content_type, body.data, gzipped=body.gzipped)

    def _send(self, status: int, content_type: str, body: bytes, gzipped: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # Access logs would be one line per scrape; state changes are logged elsewhere.
        return
