"""Vocabulary of the reference schema: the allowed values of its CHECK-constrained columns."""

from __future__ import annotations

import math
from typing import NamedTuple

TABLES = (
    "users",
    "subscriptions",
    "payments",
    "refunds",
    "signals",
    "model_evaluations",
    "portfolios",
    "positions",
    "portfolio_daily_snapshots",
    "orders",
    "trades",
)

# Allowed values per (table, column), exactly as the migrations' CHECK constraints list them.
ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("users", "tier"): ("free", "basic", "pro", "enterprise"),
    ("users", "status"): ("active", "churned"),
    ("subscriptions", "plan"): ("basic", "pro", "enterprise"),
    ("subscriptions", "billing_period"): ("monthly", "yearly"),
    ("subscriptions", "currency"): ("USD", "EUR", "GBP"),
    ("subscriptions", "status"): ("trialing", "active", "past_due", "canceled"),
    ("payments", "currency"): ("USD", "EUR", "GBP"),
    ("payments", "plan"): ("basic", "pro", "enterprise"),
    ("payments", "method"): ("card", "bank_transfer", "paypal", "crypto"),
    ("payments", "source"): ("web", "mobile", "api"),
    ("payments", "status"): ("pending", "succeeded", "failed"),
    ("signals", "strategy"): ("momentum", "mean_reversion", "breakout", "sentiment", "ml_ensemble"),
    ("signals", "timeframe"): ("1m", "5m", "1h", "4h", "1d"),
    ("signals", "direction"): ("long", "short"),
    ("signals", "status"): ("active", "closed"),
    ("signals", "outcome"): ("success", "failure", "expired"),
    ("portfolios", "account_type"): ("individual", "joint", "retirement", "institutional"),
    ("positions", "status"): ("open", "closed"),
    ("orders", "broker"): ("alpaca", "interactive_brokers", "binance", "oanda"),
    ("orders", "segment"): ("equity", "crypto", "forex", "options"),
    ("orders", "order_type"): ("market", "limit", "stop", "stop_limit"),
    ("orders", "side"): ("buy", "sell"),
    ("orders", "status"): ("pending", "open", "filled", "rejected", "canceled", "expired"),
    ("trades", "broker"): ("alpaca", "interactive_brokers", "binance", "oanda"),
    ("trades", "segment"): ("equity", "crypto", "forex", "options"),
}

MODELS = ("lstm_v3", "xgboost_v7", "transformer_v2", "ensemble_v1")
EVALUATIONS_PER_MODEL = 30
SNAPSHOT_DAYS = 30
# End-of-day valuation (the seed's 30 days of history and the demo platform's daily close): a
# shared market move per day, N(MARKET_DRIFT, MARKET_SIGMA), and per account type the market
# beta, the portfolio's own daily volatility, and log10 of a new portfolio's value (base, spread).
MARKET_DRIFT = 0.0004
MARKET_SIGMA = 0.009
ACCOUNT_RISK: dict[str, tuple[float, float, float, float]] = {
    "individual": (1.1, 0.012, 3.5, 1.5),
    "joint": (1.0, 0.010, 4.0, 1.5),
    "retirement": (0.6, 0.005, 4.3, 1.5),
    "institutional": (0.8, 0.006, 6.0, 1.7),
}
# VaR95 is this many daily standard deviations of value (one-sided 95% normal quantile).
VAR95_SIGMAS = 1.645


def account_risk_values() -> str:
    """ACCOUNT_RISK as an SQL VALUES list: (account_type, beta, idio, base_log10, spread_log10)."""
    return ", ".join(
        f"('{kind}', {beta}::float8, {idio}::float8, {base}::float8, {spread}::float8)"
        for kind, (beta, idio, base, spread) in ACCOUNT_RISK.items()
    )


POSITIONS_PER_PORTFOLIO = 5

# Redis key conventions read by the portfolio and signals exporters.
PROVIDERS = ("polygon", "binance", "alpaca", "oanda")
PRIORITIES = ("high", "normal", "low")
STRATEGIES = ALLOWED[("signals", "strategy")]


class Instrument(NamedTuple):
    """A tradable symbol, its segment, a reference price in USD and its contract multiplier."""

    symbol: str
    segment: str
    price: float
    multiplier: int = 1


# Grouped by segment (in ALLOWED order) so a segment is a contiguous slice of the SQL arrays.
INSTRUMENTS = (
    Instrument("AAPL", "equity", 190.0),
    Instrument("MSFT", "equity", 415.0),
    Instrument("NVDA", "equity", 880.0),
    Instrument("AMZN", "equity", 180.0),
    Instrument("GOOGL", "equity", 165.0),
    Instrument("TSLA", "equity", 175.0),
    Instrument("META", "equity", 495.0),
    Instrument("SPY", "equity", 520.0),
    Instrument("BTC-USD", "crypto", 65000.0),
    Instrument("ETH-USD", "crypto", 3400.0),
    Instrument("SOL-USD", "crypto", 150.0),
    Instrument("EUR/USD", "forex", 1.08),
    Instrument("GBP/USD", "forex", 1.27),
    Instrument("AUD/USD", "forex", 0.66),
    Instrument("AAPL250620C00200000", "options", 6.5, 100),
    Instrument("SPY250620P00500000", "options", 8.2, 100),
    Instrument("NVDA250620C00900000", "options", 42.0, 100),
)

# Symbols each market-data provider streams (the md:ticks:{provider} hashes).
PROVIDER_SYMBOLS: dict[str, tuple[str, ...]] = {
    "polygon": ("AAPL", "MSFT", "NVDA", "SPY", "TSLA", "AAPL250620C00200000"),
    "binance": ("BTC-USD", "ETH-USD", "SOL-USD"),
    "alpaca": ("AAPL", "AMZN", "GOOGL", "META", "BTC-USD"),
    "oanda": ("EUR/USD", "GBP/USD", "AUD/USD"),
}

# Prices follow a slow deterministic wave around the reference price (about +-12% over a
# ~1-year cycle, a different phase per symbol), so trades, positions and ticks agree.
PRICE_WAVE_AMPLITUDE = 0.12
PRICE_WAVE_DAYS = 58.0


def price_at(index: int, days_before_anchor: float) -> float:
    """Price of INSTRUMENTS[index - 1] (1-based, as in SQL arrays) some days before the anchor."""
    base = INSTRUMENTS[index - 1].price
    wave = math.sin(days_before_anchor / PRICE_WAVE_DAYS + index)
    return base * (1 + PRICE_WAVE_AMPLITUDE * wave)
