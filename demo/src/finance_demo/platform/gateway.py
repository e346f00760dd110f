"""The API gateway: the platform's public routes, each forwarded to its service over HTTP.

The trace continues across the hop (W3C traceparent), and the upstream's status is passed on:
a 503 from a service whose datastore is down is a 503 of the gateway too. An upstream that
does not answer is a 502, one that answers too late a 504. One route, the account overview
(overview.py), is the gateway's own: it reads all four services for one answer.
"""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from urllib.parse import quote

from opentelemetry import propagate
from opentelemetry.trace import SpanKind, Tracer

from finance_demo.platform.http import Request, Response, Route
from finance_demo.platform.overview import OVERVIEW_ROUTE, AccountOverview

UPSTREAM_TIMEOUT_SECONDS = 5.0

# (method, route template, upstream service): the gateway's routes are the services' routes.
ROUTES = (
    ("POST", "/v1/users", "user-management"),
    ("POST", "/v1/users/{id}/churn", "user-management"),
    ("POST", "/v1/sessions", "user-management"),
    ("POST", "/v1/payments", "payment"),
    ("GET", "/v1/payments/{id}", "payment"),
    ("POST", "/v1/payments/{id}/refunds", "payment"),
    ("POST", "/v1/signals", "trading"),
    ("POST", "/v1/orders", "trading"),
    ("GET", "/v1/orders/{id}", "trading"),
    ("GET", "/v1/quotes/{symbol}", "market-data"),
)


class Gateway:
    """Forwards each route to the base URL of its upstream service."""

    def __init__(self, upstreams: Mapping[str, str], tracer: Tracer) -> None:
        self._upstreams = dict(upstreams)
        self._tracer = tracer

    def routes(self) -> list[Route]:
        """One forwarding route per entry of ROUTES, and the account overview."""
        forwarded = [
            Route(method, template, functools.partial(self.call, method, template, upstream))
            for method, template, upstream in ROUTES
        ]
        return [*forwarded, Route("GET", OVERVIEW_ROUTE, AccountOverview(self.fetch).handle)]

    def call(self, method: str, template: str, upstream: str, request: Request) -> Response:
        """Send `request` to the upstream's same route; return its answer."""
        body = request.body if method == "POST" else None
        return self.fetch(method, template, upstream, request.params, body)

    def fetch(
        self,
        method: str,
        template: str,
        upstream: str,
        params: Mapping[str, str],
        body: Mapping[str, object] | None = None,
    ) -> Response:
        """Call the upstream's route `template` with path `params` in a CLIENT span."""
        path = template.format(**{k: quote(v, safe="") for k, v in params.items()})
        url = self._upstreams[upstream] + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        data = json.dumps(dict(body)).encode() if body is not None else None
        with self._tracer.start_as_current_span(
            f"{method} {template}", kind=SpanKind.CLIENT
        ) as span:
            span.set_attribute("peer.service", upstream)
            propagate.inject(headers)
            outgoing = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(outgoing, timeout=UPSTREAM_TIMEOUT_SECONDS) as answer:
                    status, raw = answer.status, answer.read()
            except urllib.error.HTTPError as err:
                status, raw = err.code, err.read()
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                if isinstance(reason, TimeoutError):
                    return Response(504, {"error": f"{upstream} did not answer in time"})
                return Response(502, {"error": f"{upstream} unreachable: {reason}"})
            span.set_attribute("http.response.status_code", status)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return Response(502, {"error": f"{upstream} answered something other than JSON"})
        return Response(status, body if isinstance(body, dict) else {"result": body})
