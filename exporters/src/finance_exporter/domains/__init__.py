"""The three exporters' built-in queries for the reference schema (data only)."""

from __future__ import annotations

from finance_exporter.domains import portfolio, revenue, signals
from finance_exporter.spec import QuerySpec

DOMAINS: dict[str, tuple[QuerySpec, ...]] = {
    "revenue": revenue.QUERIES,
    "signals": signals.QUERIES,
    "portfolio": portfolio.QUERIES,
}
