"""A service's HTTP surface: routes by template, /metrics, /healthz, /readyz, /-/faults, the
instrumentation.

Every request to a route is timed, counted by its route template (never the raw path), traced
(the caller's W3C traceparent is continued) and logged. /metrics, /healthz, /readyz and /-/faults
are not counted. /healthz (liveness) never touches a datastore; /readyz (readiness) asks each
datastore within a short deadline and answers 503 naming the ones that failed (readiness.py).

/-/faults reads (GET) and replaces (PUT, a JSON object of knobs; omitted knobs are off) the
service's fault knobs (faults.py), and answers 403 to any peer that is not loopback: inside the
container only, never to Prometheus, the load or the gateway's neighbours on the network. The
request knobs act inside the timed request, so an injected 500 or delay is counted and measured
exactly like a real one.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from prometheus_client.exposition import choose_encoder

from finance_demo.platform.datastores import DatastoreUnavailableError
from finance_demo.platform.faults import FaultError, FaultSwitch, parse
from finance_demo.platform.logs import current_service
from finance_demo.platform.metrics import ServiceMetrics
from finance_demo.platform.readiness import Readiness
from finance_demo.platform.tracing import trace_ids

logger = logging.getLogger(__name__)

# Requests that match no route share one label value, so scanners cannot grow the label set.
UNMATCHED_ROUTE = "unmatched"
MAX_BODY_BYTES = 64 * 1024
FAULTS_PATH = "/-/faults"
INJECTED_ERROR = "injected fault"


class HttpError(Exception):
    """A request the service refuses: its status (4xx) and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Request:
    """A parsed request: path parameters, JSON body and headers."""

    method: str
    params: Mapping[str, str]
    body: Mapping[str, object]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Response:
    """A JSON response."""

    status: int
    body: Mapping[str, object]


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A method and a path template such as /v1/orders/{id}, and its handler."""

    method: str
    template: str
    handler: Handler

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters if `path` fits the template, else None."""
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        found = re.fullmatch(pattern, path)
        return {k: unquote(v) for k, v in found.groupdict().items()} if found else None


@dataclass(frozen=True)
class Service:
    """One platform service: its name (as in monitoring/inventory.yml), routes and metrics."""

    name: str
    routes: Sequence[Route]
    metrics: ServiceMetrics
    tracer: Tracer
    readiness: Readiness
    faults: FaultSwitch


def is_loopback(host: str) -> bool:
    """Whether a peer address is this machine's own (127.0.0.0/8, ::1, or IPv4-mapped)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def make_server(service: Service, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for `service` on host:port (not yet serving)."""

    class _Handler(BaseHTTPRequestHandler):
        server_version = "finance-demo"

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def log_message(self, format: str, *args: object) -> None:
            """Access logs are written by _serve as ECS JSON instead."""

        def _handle(self) -> None:
            path = self.path.split("?", 1)[0]
            if self.command == "GET" and path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(service.metrics.registry), content_type)
            elif self.command == "GET" and path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif self.command == "GET" and path == "/readyz":
                report = service.readiness.check()
                body = {"ready": report.ready, "failing": dict(report.failing)}
                self._send(
                    200 if report.ready else 503, json.dumps(body).encode(), "application/json"
                )
            elif path == FAULTS_PATH:
                self._faults()
            else:
                self._serve(path)

        def _faults(self) -> None:
            status, body = 200, dict[str, object]()
            if not is_loopback(str(self.client_address[0])):
                status, body = 403, {"error": f"{FAULTS_PATH} answers loopback peers only"}
            elif self.command == "PUT":
                try:
                    service.faults.set(parse(service.name, self._body()))
                except FaultError as err:
                    status, body = 400, {"error": str(err)}
                except HttpError as err:
                    status, body = err.status, {"error": err.reason}
            elif self.command != "GET":
                status, body = 405, {"error": f"{FAULTS_PATH} takes GET or PUT"}
            if status == 200:
                body = service.faults.current.knobs(service.name)
            self._send(status, json.dumps(body).encode(), "application/json")

        def _serve(self, path: str) -> None:
            current_service.set(service.name)
            route, params = _route(service.routes, self.command, path)
            template = route.template if route else UNMATCHED_ROUTE
            # The getter of a dict carrier is case-sensitive; W3C header names are lowercase.
            context = propagate.extract({k.lower(): v for k, v in self.headers.items()})
            gauge = service.metrics.in_flight.labels(service.name)
            started = time.perf_counter()
            gauge.inc()
            try:
                with service.tracer.start_as_current_span(
                    f"{self.command} {template}", context=context, kind=SpanKind.SERVER
                ) as span:
                    span.set_attribute("http.request.method", self.command)
                    span.set_attribute("http.route", template)
                    response = self._respond(route, params)
                    span.set_attribute("http.response.status_code", response.status)
                    if response.status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                    trace_id, _ = trace_ids()
                    body = json.dumps(response.body).encode()
                    self._send(response.status, body, "application/json")
                    seconds = time.perf_counter() - started
                    service.metrics.observe(
                        template, self.command, response.status, seconds, trace_id
                    )
                    level = logging.WARNING if response.status >= 500 else logging.INFO
                    logger.log(
                        level,
                        "request served",
                        extra={
                            "http.request.method": self.command,
                            "http.route": template,
                            "http.response.status_code": response.status,
                            "event.duration": round(seconds * 1e9),
                        },
                    )
            finally:
                gauge.dec()

        def _respond(self, route: Route | None, params: Mapping[str, str]) -> Response:
            if route is None:
                allowed = any(r.match(self.path.split("?", 1)[0]) for r in service.routes)
                return Response(405 if allowed else 404, {"error": "no such route"})
            faults = service.faults.current
            if faults.added_latency_ms:
                time.sleep(faults.added_latency_ms / 1000)
            if service.faults.fails_request():
                return Response(500, {"error": INJECTED_ERROR})
            try:
                request = Request(self.command, params, self._body(), dict(self.headers.items()))
                return route.handler(request)
            except HttpError as err:
                return Response(err.status, {"error": err.reason})
            except DatastoreUnavailableError as err:
                return Response(503, {"error": str(err)})
            except Exception:
                logger.exception("request failed", extra={"http.route": route.template})
                return Response(500, {"error": "internal error"})

        def _body(self) -> Mapping[str, object]:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                raise HttpError(413, "body too large")
            if not length:
                return {}
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                raise HttpError(400, "body is not JSON") from None
            if not isinstance(body, dict):
                raise HttpError(400, "body must be a JSON object")
            return body

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    return server


def _route(routes: Sequence[Route], method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route in routes:
        if route.method != method:
            continue
        params = route.match(path)
        if params is not None:
            return route, params
    return None, {}
