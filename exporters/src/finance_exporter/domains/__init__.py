"""The three exporters' built-in queries for the reference schema (data only)."""

from __future__ import annotations

from finance_exporter.domains import portfolio, revenue, signals
from finance_exporter.spec import QuerySpec

# The bounded value set of every label, as the reference schema's CHECK constraints and the Redis
# key conventions allow them; the catalogue and the tests read this.
LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "currency": ("USD", "EUR", "GBP"),
    "plan": ("basic", "pro", "enterprise"),
    "source": ("web", "mobile", "api"),
    "status": ("succeeded", "failed", "filled", "rejected", "canceled", "expired"),
    "method": ("card", "bank_transfer", "paypal", "crypto"),
    "tier": ("free", "basic", "pro", "enterprise"),
    "strategy": signals.STRATEGIES,
    "timeframe": ("1m", "5m", "1h", "4h", "1d"),
    "outcome": ("success", "failure", "expired"),
    "account_type": ("individual", "joint", "retirement", "institutional"),
    "broker": ("alpaca", "interactive_brokers", "binance", "oanda"),
    "segment": ("equity", "crypto", "forex", "options"),
    "order_type": ("market", "limit", "stop", "stop_limit"),
    "priority": portfolio.PRIORITIES,
    "provider": portfolio.PROVIDERS,
}
# Labels whose values come from the data rather than a constraint; the series budget caps them.
OPEN_LABELS = {"model": "model names in model_evaluations"}

DOMAINS: dict[str, tuple[QuerySpec, ...]] = {
    "revenue": revenue.QUERIES,
    "signals": signals.QUERIES,
    "portfolio": portfolio.QUERIES,
}
