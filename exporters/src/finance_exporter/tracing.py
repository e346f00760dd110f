"""OpenTelemetry tracing of refreshes: one span per refresh, a child span per query.

Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: then no tracer provider exists and
the loader gets the API's no-op tracer, whose spans are one shared non-recording object (no ids,
no clock reads, nothing queued). When it is on, ended spans wait in a BatchSpanProcessor's
bounded queue and its own thread posts them over OTLP/HTTP. A collector that is down or slow
costs dropped batches on that thread, never a scrape.

Query spans follow the stable database conventions (`db.system.name`, `db.operation.name`,
`db.query.summary`, `error.type`) and also carry the older `db.system`, which trace UIs and
span-to-metrics links still read (the conventions' "database/dup" transition mode).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from finance_exporter.spec import QuerySpec

logger = logging.getLogger(__name__)

SCOPE = "finance_exporter"
NAMESPACE = "ai-finance"
TRACES_PATH = "/v1/traces"
# One export request, the SDK's retries included, may take this long on the processor's thread.
EXPORT_TIMEOUT_SECONDS = 5.0
# Spans still queued at exit get this long to leave. Compose kills 10 s after SIGTERM, and a
# collector that does not answer must not hold the exit.
SHUTDOWN_TIMEOUT_SECONDS = 2.0

DB_SYSTEMS = {"postgres": "postgresql", "redis": "redis"}
_REDIS_OPERATIONS = {"llen": "LLEN", "scard": "SCARD", "mget_age": "MGET"}

# Attribute names: the semantic conventions' where they have one, `finance.` otherwise.
QUERY_NAME = "finance.query.name"
QUERY_INCREMENTAL = "finance.query.incremental"
QUERIES = "finance.refresh.queries"
QUERIES_FAILED = "finance.refresh.queries_failed"
RETURNED_ROWS = "db.response.returned_rows"


def tracer_provider(exporter: str, endpoint: str | None) -> TracerProvider | None:
    """A provider exporting to `endpoint` over OTLP/HTTP, or None (tracing off) without one."""
    if not endpoint:
        return None
    provider = TracerProvider(resource=resource(exporter), shutdown_on_exit=False)
    url = endpoint.rstrip("/") + TRACES_PATH
    span_exporter = OTLPSpanExporter(endpoint=url, timeout=EXPORT_TIMEOUT_SECONDS)
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return provider


def resource(exporter: str) -> Resource:
    """The resource of the `exporter`'s spans: service.name finance-exporter-<exporter>."""
    return Resource.create(
        {"service.name": f"finance-exporter-{exporter}", "service.namespace": NAMESPACE}
    )


def get_tracer(provider: TracerProvider | None) -> Tracer:
    """The provider's tracer, or the API's no-op tracer when tracing is off."""
    return provider.get_tracer(SCOPE) if provider is not None else trace.NoOpTracer()


def shutdown(
    provider: TracerProvider | None, timeout_seconds: float = SHUTDOWN_TIMEOUT_SECONDS
) -> bool:
    """Send the queued spans and stop, waiting at most `timeout_seconds`; True if it finished."""
    if provider is None:
        return True
    # TracerProvider.shutdown waits up to 30 s for the processor's thread, and force_flush
    # ignores its timeout (SDK 1.45), so the wait is bounded here, on a daemon thread that the
    # interpreter's exit does not wait for.
    worker = threading.Thread(target=provider.shutdown, name="trace-shutdown", daemon=True)
    worker.start()
    worker.join(timeout_seconds)
    if worker.is_alive():
        logger.warning("traces not flushed", extra={"timeout_seconds": timeout_seconds})
        return False
    return True


@contextmanager
def refresh_span(tracer: Tracer, exporter: str, queries: int) -> Iterator[Span]:
    """The current span for one refresh of `exporter`'s `queries` queries."""
    with tracer.start_as_current_span(f"refresh {exporter}") as span:
        span.set_attribute(QUERIES, queries)
        yield span


def refresh_done(span: Span, failed: int) -> None:
    """Record how many queries of the refresh failed; any failure marks the refresh an error."""
    span.set_attribute(QUERIES_FAILED, failed)
    if failed:
        span.set_status(Status(StatusCode.ERROR, f"{failed} queries failed"))


@contextmanager
def query_span(tracer: Tracer, spec: QuerySpec) -> Iterator[Span]:
    """The current span for one query, a database client span named after the query."""
    system = DB_SYSTEMS[spec.source]
    operation = "SELECT"
    attributes: dict[str, str | bool | int] = {QUERY_NAME: spec.name}
    if spec.redis is not None:
        operation = _REDIS_OPERATIONS[spec.redis.command]
        keys = len(spec.redis.label_values)
        # A pipeline of one command per key is a batch; MGET is one command with many keys.
        if spec.redis.command != "mget_age" and keys > 1:
            operation = f"BATCH {operation}"
            attributes["db.operation.batch.size"] = keys
    else:
        attributes[QUERY_INCREMENTAL] = spec.incremental
    # The configured query name is the low-cardinality target: "SELECT payments_gross".
    summary = f"{operation} {spec.name}"
    attributes |= {
        "db.system.name": system,
        "db.system": system,
        "db.operation.name": operation,
        "db.query.summary": summary,
    }
    with tracer.start_as_current_span(summary, kind=SpanKind.CLIENT, attributes=attributes) as span:
        yield span


def record_rows(rows: int) -> None:
    """Record on the current query span how many rows (Postgres) or keys (Redis) were read."""
    trace.get_current_span().set_attribute(RETURNED_ROWS, rows)


def record_failure(reason: str, error: BaseException | None = None) -> None:
    """Mark the current query span failed: `reason` as error.type, and the exception if any."""
    span = trace.get_current_span()
    span.set_attribute("error.type", reason)
    if error is None:
        span.set_status(Status(StatusCode.ERROR, f"not run: {reason}"))
        return
    sqlstate = getattr(error.__cause__, "sqlstate", None)
    if sqlstate:
        span.set_attribute("db.response.status_code", str(sqlstate))
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, str(error)))
