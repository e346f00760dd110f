"""OpenTelemetry tracing: one tracer provider per service, exported over OTLP only if asked.

Spans are always recorded, so trace ids reach the exemplars and the log lines; they leave the
process only when OTEL_EXPORTER_OTLP_ENDPOINT is set (Jaeger's OTLP/HTTP port in the compose
`traces` profile). The exporter reads that variable itself and appends /v1/traces.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
NAMESPACE = "ai-finance-demo"


def tracer_provider(service: str, environ: Mapping[str, str]) -> TracerProvider:
    """A provider whose spans carry service.name=`service`; exported when an endpoint is set."""
    resource = Resource.create({"service.name": service, "service.namespace": NAMESPACE})
    provider = TracerProvider(resource=resource)
    if environ.get(ENDPOINT_VARIABLE):
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def trace_ids() -> tuple[str | None, str | None]:
    """The current span's trace id and span id as hex, or (None, None) outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None, None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
