"""The port variables of the services a test or benchmark stack publishes on loopback: each gets
a free port, so a stack never collides with another one or with a user's."""

from __future__ import annotations

PORTS = (
    "PROMETHEUS_PORT",
    "ALERTMANAGER_PORT",
    "ALERT_SINK_PORT",
    "ALERT_SINK_SMTP_PORT",
    "REVENUE_EXPORTER_PORT",
    "SIGNALS_EXPORTER_PORT",
    "PORTFOLIO_EXPORTER_PORT",
    "JAEGER_UI_PORT",
    "OTLP_GRPC_PORT",
    "OTLP_HTTP_PORT",
)
