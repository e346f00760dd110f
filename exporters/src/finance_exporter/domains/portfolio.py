"""Portfolio: assets, returns, risk, trading volume, orders, order queues and market data."""

from __future__ import annotations

from finance_exporter.spec import MetricSpec, QuerySpec, RedisRead, xid_range

PRIORITIES = ("high", "normal", "low")
PROVIDERS = ("polygon", "binance", "alpaca", "oanda")

# Valuations come from the latest end-of-day snapshot of every portfolio, summed per day and
# account type by the reference schema's triggers (006_gauge_summaries.sql): a refresh reads
# four rows, not one snapshot per portfolio.
_LATEST_DAY = """
FROM portfolio_day_totals
WHERE portfolios > 0 AND day = (SELECT max(day) FROM portfolio_day_totals WHERE portfolios > 0)
GROUP BY account_type
"""

AUM = QuerySpec(
    name="aum",
    source="postgres",
    metric=MetricSpec(
        name="finance_assets_under_management_usd",
        kind="gauge",
        help="Value of all portfolios at the latest end-of-day snapshot, in US dollars.",
        labels=("account_type",),
        max_series=4,
    ),
    sql=f"""
SELECT account_type, sum(value_usd) AS value{_LATEST_DAY}""",
)

DAILY_RETURN = QuerySpec(
    name="daily_return",
    source="postgres",
    metric=MetricSpec(
        name="finance_portfolio_daily_return_ratio",
        kind="gauge",
        help="Value-weighted daily return of the latest end-of-day snapshot (0.01 = +1%).",
        labels=("account_type",),
        max_series=4,
        allow_negative=True,
    ),
    sql=f"""
SELECT account_type, sum(weighted_return) / nullif(sum(value_usd), 0) AS value{_LATEST_DAY}""",
)

VAR95 = QuerySpec(
    name="var95",
    source="postgres",
    metric=MetricSpec(
        name="finance_portfolio_var95_usd",
        kind="gauge",
        help="Sum of the portfolios' 95% one-day value at risk at the latest snapshot, in US "
        "dollars (a conservative bound: it ignores diversification across portfolios).",
        labels=("account_type",),
        max_series=4,
    ),
    sql=f"""
SELECT account_type, sum(var95_usd) AS value{_LATEST_DAY}""",
)

TRADING_VOLUME = QuerySpec(
    name="trading_volume",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_trading_volume_usd_total",
        kind="counter",
        help="Notional value of executed trades, in US dollars.",
        labels=("broker", "segment"),
        max_series=16,
    ),
    sql=f"""
SELECT broker, segment, sum(notional_usd) AS value
FROM trades
WHERE {xid_range("created_xid")}
GROUP BY broker, segment
""",
)

ORDERS = QuerySpec(
    name="orders",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_orders_total",
        kind="counter",
        help="Orders that reached a final status (filled, rejected, canceled, expired).",
        labels=("broker", "segment", "order_type", "status"),
        max_series=256,
    ),
    sql=f"""
SELECT broker, segment, order_type, status, count(*) AS value
FROM orders
WHERE {xid_range("final_xid")}
GROUP BY broker, segment, order_type, status
""",
)

OPEN_POSITIONS = QuerySpec(
    name="open_positions",
    source="postgres",
    metric=MetricSpec(
        name="finance_open_positions",
        kind="gauge",
        help="Open positions across all portfolios.",
        labels=("account_type",),
        max_series=4,
    ),
    sql="""
SELECT account_type, sum(positions) AS value
FROM open_position_totals
GROUP BY account_type
HAVING sum(positions) > 0
""",
)

ORDER_QUEUE = QuerySpec(
    name="order_queue",
    source="redis",
    metric=MetricSpec(
        name="finance_order_queue_depth",
        kind="gauge",
        help="Orders waiting in the Redis order queue (a list per priority).",
        labels=("priority",),
        max_series=len(PRIORITIES),
    ),
    redis=RedisRead(command="llen", key_template="orders:queue:{}", label_values=PRIORITIES),
)

MARKET_DATA_AGE = QuerySpec(
    name="market_data_age",
    source="redis",
    metric=MetricSpec(
        name="finance_market_data_age_seconds",
        kind="gauge",
        help="Seconds since the newest price tick of each market-data provider (Redis "
        "md:last_tick:<provider>, a Unix timestamp); +Inf if the provider has no tick key.",
        labels=("provider",),
        max_series=len(PROVIDERS),
    ),
    redis=RedisRead(command="mget_age", key_template="md:last_tick:{}", label_values=PROVIDERS),
)

QUERIES: tuple[QuerySpec, ...] = (
    AUM,
    DAILY_RETURN,
    VAR95,
    TRADING_VOLUME,
    ORDERS,
    OPEN_POSITIONS,
    ORDER_QUEUE,
    MARKET_DATA_AGE,
)
