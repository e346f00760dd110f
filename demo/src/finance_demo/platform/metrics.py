"""One service's request metrics, exactly as docs/instrumentation.md specifies them.

Every service has its own CollectorRegistry, so each /metrics is a separate Prometheus target,
and the `service` label is carried on the series themselves: relabelling at scrape time is not
needed, and a user's own services that follow the contract replace these one for one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

REQUESTS = "http_requests"
REQUESTS_HELP = "HTTP requests served, by route template, method and status code."
DURATION = "http_request_duration_seconds"
DURATION_HELP = "Time to serve an HTTP request, in seconds."
IN_FLIGHT = "http_requests_in_flight"
IN_FLIGHT_HELP = "HTTP requests being served now."
AUTH_ATTEMPTS = "auth_attempts"
AUTH_ATTEMPTS_HELP = "Login attempts, by result (success, failure)."
START_TIME = "process_start_time_seconds"
START_TIME_HELP = "Unix time the service started, in seconds."

# docs/instrumentation.md: a bound at every service's latency threshold (0.1, 0.5, 1 and 2 s).
DURATION_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)
AUTH_RESULTS = ("success", "failure")


class _StartTimeCollector:
    """process_start_time_seconds{service}: the default process collector has no service label."""

    def __init__(self, service: str, started_at: float) -> None:
        self._service = service
        self._started_at = started_at

    def collect(self) -> Iterable[Metric]:
        """Yield the start time of this service."""
        family = GaugeMetricFamily(START_TIME, START_TIME_HELP, labels=["service"])
        family.add_metric([self._service], self._started_at)
        yield family

    def describe(self) -> Iterable[Metric]:
        """Nothing to describe ahead of a scrape."""
        return []


class ServiceMetrics:
    """The registry of one service and its contract metrics."""

    def __init__(self, service: str, started_at: float | None = None) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            REQUESTS,
            REQUESTS_HELP,
            ["service", "route", "method", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            DURATION,
            DURATION_HELP,
            ["service", "route", "method"],
            buckets=DURATION_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.in_flight = Gauge(IN_FLIGHT, IN_FLIGHT_HELP, ["service"], registry=self.registry)
        self.in_flight.labels(service)
        self.auth = Counter(AUTH_ATTEMPTS, AUTH_ATTEMPTS_HELP, ["service", "result"], registry=None)
        self.registry.register(
            _StartTimeCollector(service, time.time() if started_at is None else started_at)
        )

    def enable_auth(self) -> None:
        """Expose auth_attempts_total (only services that authenticate), both results at 0."""
        self.registry.register(self.auth)
        for result in AUTH_RESULTS:
            self.auth.labels(self.service, result)

    def observe(
        self, route: str, method: str, code: int, seconds: float, trace_id: str | None
    ) -> None:
        """Count one served request and its duration, with the trace as the exemplar."""
        self.requests.labels(self.service, route, method, str(code)).inc()
        exemplar = {"trace_id": trace_id} if trace_id else None
        self.duration.labels(self.service, route, method).observe(seconds, exemplar)

    def login(self, success: bool) -> None:
        """Count one authentication attempt."""
        self.auth.labels(self.service, "success" if success else "failure").inc()
