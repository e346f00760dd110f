"""Composition of the demo platform: five services, each on its own port with its own /metrics.

One process hosts them all (a demo needs no more), but each service has its own registry,
tracer provider and HTTP server, so Prometheus sees five targets and Jaeger five services, and
the gateway reaches the others over real HTTP like it would across hosts. Each service also has
its own fault knobs (faults.py), all off until a drill sets them on its /-/faults.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import disable_created_metrics

from finance_demo.platform.datastores import PostgresPool, RedisStore
from finance_demo.platform.evaluation import run_evaluations
from finance_demo.platform.faults import FaultSwitch
from finance_demo.platform.gateway import Gateway
from finance_demo.platform.http import Route, Service, make_server
from finance_demo.platform.market import MarketDataService
from finance_demo.platform.metrics import ServiceMetrics
from finance_demo.platform.payment import PaymentService
from finance_demo.platform.readiness import Readiness
from finance_demo.platform.tracing import tracer_provider
from finance_demo.platform.trading import TradingService
from finance_demo.platform.users import UserService
from finance_demo.platform.valuation import run_close

logger = logging.getLogger(__name__)

# The services of monitoring/inventory.yml, in port order: base_port + position. The port numbers
# are typed only here; tests/config/test_demo_ports.py checks every copy outside Python (compose
# labels, healthcheck, comments, docs) against ports().
SERVICES = ("api-gateway", "payment", "trading", "market-data", "user-management")
DEFAULT_BASE_PORT = 8081


def ports(base_port: int = DEFAULT_BASE_PORT) -> dict[str, int]:
    """Each service's port, in SERVICES order, when api-gateway listens on `base_port`."""
    return {name: base_port + position for position, name in enumerate(SERVICES)}


@dataclass(frozen=True)
class PlatformSettings:
    """Where the datastores are and where the services listen."""

    database_url: str
    redis_url: str
    host: str = "0.0.0.0"
    base_port: int = DEFAULT_BASE_PORT
    environ: Mapping[str, str] = field(default_factory=dict)

    def port(self, service: str) -> int:
        """The port of `service`."""
        return ports(self.base_port)[service]


class Platform:
    """The five services, their datastore clients, fault knobs, the market-data feed and the
    trading side's end-of-day close and model evaluation."""

    def __init__(
        self, settings: PlatformSettings, span_processor: SpanProcessor | None = None
    ) -> None:
        """Build the five services; `span_processor`, if given, also gets all their spans."""
        # The _created series of every counter would double the series for nothing here.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._pool = PostgresPool(settings.database_url)
        self._store = RedisStore(settings.redis_url)
        readiness = Readiness({"postgres": self._pool.ping, "redis": self._store.ping})
        self._providers: dict[str, TracerProvider] = {
            name: tracer_provider(name, settings.environ) for name in SERVICES
        }
        if span_processor is not None:  # the tests' seam: spans kept in memory
            for provider in self._providers.values():
                provider.add_span_processor(span_processor)
        self.metrics = {name: ServiceMetrics(name) for name in SERVICES}
        self.metrics["user-management"].enable_auth()
        self.faults = {name: FaultSwitch(name) for name in SERVICES}
        self.market = MarketDataService(self._store, self.faults["market-data"])
        local = "127.0.0.1" if settings.host in ("", "0.0.0.0") else settings.host
        upstreams = {name: f"http://{local}:{settings.port(name)}" for name in SERVICES}
        routes: dict[str, list[Route]] = {
            "api-gateway": Gateway(upstreams, self._tracer("api-gateway")).routes(),
            "payment": PaymentService(self._pool, self.faults["payment"]).routes(),
            "trading": TradingService(self._pool, self._store, self.faults["trading"]).routes(),
            "market-data": self.market.routes(),
            "user-management": UserService(self._pool, self.metrics["user-management"]).routes(),
        }
        self.servers: dict[str, ThreadingHTTPServer] = {}
        try:
            for name in SERVICES:
                service = Service(
                    name,
                    routes[name],
                    self.metrics[name],
                    self._tracer(name),
                    readiness,
                    self.faults[name],
                )
                self.servers[name] = make_server(service, settings.host, settings.port(name))
        except OSError:
            self._close_servers()
            raise
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _tracer(self, service: str) -> Tracer:
        return self._providers[service].get_tracer("finance_demo.platform")

    def start(self) -> None:
        """Serve every service, run the market-data feed, the end-of-day close and the model
        evaluation, each in a daemon thread."""
        for name, server in self.servers.items():
            thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
            host, port = server.server_address[:2]
            logger.info(
                "service listening",
                extra={"service.name": name, "server.address": str(host), "server.port": port},
            )
        feed = threading.Thread(target=self.market.run_feed, args=(self._stop,), daemon=True)
        close = threading.Thread(target=run_close, args=(self._pool, self._stop), daemon=True)
        evaluate = threading.Thread(
            target=run_evaluations, args=(self._pool, self._stop), daemon=True
        )
        for thread in (feed, close, evaluate):
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop serving, flush the spans, close the datastore clients."""
        self._stop.set()
        for server in self.servers.values():
            server.shutdown()
        self._close_servers()
        for thread in self._threads:
            thread.join(timeout=5)
        for provider in self._providers.values():
            provider.shutdown()
        self._pool.close()
        self._store.close()

    def _close_servers(self) -> None:
        for server in self.servers.values():
            server.server_close()


def run(settings: PlatformSettings) -> int:
    """Run the platform until SIGTERM or SIGINT; 0 on a clean stop."""
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    # As PID 1 in a container, SIGTERM has no default action: stop on it explicitly.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        platform = Platform(settings)
    except OSError as err:
        logger.error("cannot listen", extra={"error.message": str(err)})
        return 1
    platform.start()
    logger.info("platform started", extra={"services": list(SERVICES)})
    while not stop.wait(1.0):
        pass
    logger.info("platform stopping")
    platform.stop()
    return 0
