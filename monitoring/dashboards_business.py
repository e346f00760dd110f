"""The business dashboards' panels: revenue and subscriptions, trading, portfolio and risk.

Metrics are the finance exporter's (docs/metrics.md); thresholds are those of
prometheus/rules/business.rules.yml and trading.rules.yml.
"""

from __future__ import annotations

from monitoring.alert_limits import alerting
from monitoring.panels import Query, graph, row, single, variable
from monitoring.spec import Content

DAY = "[1d]"


def business() -> Content:
    """Revenue and subscriptions (uid business-revenue)."""
    # `and <counter>`: only while the counter is still exported. The increase over a window
    # keeps counting a series that has gone (its exporter died) until its last sample leaves the
    # window, a day later for the 24h stats; the exporter drops a total it cannot refresh.
    gross = (
        "sum by (currency) (increase(finance_payments_gross_amount_total[{w}])"
        " and finance_payments_gross_amount_total)"
    )
    refunds = (
        "sum by (currency) (increase(finance_refunds_amount_total[{w}])"
        " and finance_refunds_amount_total)"
    )
    net = f"{gross} - ({refunds} or 0 * {gross})"
    payments = 'sum(rate(finance_payments_total{status="succeeded"}[30m]))'
    return Content(
        [
            row("Revenue"),
            single(
                "Gross revenue (24h)",
                [Query(gross.format(w="1d"), "{{currency}}")],
                "none",
                currency=True,
                width=8,
            ),
            single(
                "Net revenue (24h)",
                [Query(net.format(w="1d"), "{{currency}}")],
                "none",
                description="Gross revenue minus refunds.",
                currency=True,
                width=8,
            ),
            single(
                "Refunds (24h)",
                [Query(refunds.format(w="1d"), "{{currency}}")],
                "none",
                currency=True,
                width=8,
            ),
            graph(
                "Gross and net revenue per hour",
                [
                    Query(gross.format(w="1h"), "gross {{currency}}"),
                    Query(net.format(w="1h"), "net {{currency}}"),
                ],
                "short",
            ),
            graph("Refunds per hour", [Query(refunds.format(w="1h"), "{{currency}}")], "short"),
            row("Payments"),
            graph(
                "Payments by status",
                [
                    Query(
                        "sum by (status) (rate(finance_payments_total[$__rate_interval]))",
                        "{{status}}",
                    )
                ],
                "ops",
            ),
            graph(
                "Payment success ratio (30m)",
                [Query(f"{payments} / sum(rate(finance_payments_total[30m]))", "succeeded")],
                "percentunit",
                **alerting("PaymentSuccessRatioLow", "%"),
            ),
            row("Subscriptions and users"),
            single(
                "Monthly recurring revenue",
                [
                    Query(
                        "sum by (currency) (finance_monthly_recurring_revenue_amount)",
                        "{{currency}}",
                    )
                ],
                "none",
                currency=True,
            ),
            single(
                "Active subscriptions",
                [Query("sum(finance_active_subscriptions)", "subscriptions")],
                "short",
            ),
            single("Active users", [Query("sum(finance_active_users)", "users")], "short"),
            single(
                "Churn (24h)",
                [
                    Query(
                        "sum(increase(finance_user_churns_total[1d])) / sum(finance_active_users)",
                        "churn",
                    )
                ],
                "percentunit",
                **alerting("ChurnRateHigh", "%", of="of active users a day"),
            ),
            graph(
                "Active subscriptions by plan",
                [Query("sum by (plan) (finance_active_subscriptions)", "{{plan}}")],
                "short",
            ),
            graph(
                "Signups and churns per hour",
                [
                    Query("sum(increase(finance_user_signups_total[1h]))", "signups"),
                    Query("sum(increase(finance_user_churns_total[1h]))", "churns"),
                ],
                "short",
            ),
        ]
    )


def trading() -> Content:
    """Signals, orders and market data (uid trading-signals-orders)."""
    strategy = '{strategy=~"$strategy"}'
    broker = '{broker=~"$broker"}'
    closed = f"finance_signals_closed_total{strategy}"
    success = (
        f'sum by (strategy) (rate(finance_signals_closed_total{{strategy=~"$strategy",'
        f'outcome="success"}}{DAY})) / sum by (strategy) (rate({closed}{DAY}))'
    )
    orders = f"finance_orders_total{broker}"
    rejected = '{broker=~"$broker",status="rejected"}'
    return Content(
        [
            row("Signals"),
            graph(
                "Signals generated",
                [
                    Query(
                        f"sum by (strategy) (rate(finance_signals_generated_total{strategy}"
                        "[$__rate_interval]))",
                        "{{strategy}}",
                    )
                ],
                "ops",
            ),
            graph(
                "Signals closed by outcome",
                [Query(f"sum by (outcome) (rate({closed}[$__rate_interval]))", "{{outcome}}")],
                "ops",
            ),
            graph(
                "Success ratio by strategy (1d)",
                [Query(success, "{{strategy}}")],
                "percentunit",
                **alerting("SignalSuccessRatioLow", "%"),
            ),
            graph(
                "Signal generation time P95",
                [
                    Query(
                        "histogram_quantile(0.95, sum by (strategy, le) (rate("
                        f"finance_signal_generation_seconds_bucket{strategy}[$__rate_interval])))",
                        "{{strategy}}",
                    )
                ],
                "s",
                **alerting("SignalGenerationSlow", "s"),
            ),
            graph(
                "Active signals",
                [Query(f"sum by (strategy) (finance_signals_active{strategy})", "{{strategy}}")],
                "short",
            ),
            graph(
                "Model accuracy",
                [Query("finance_prediction_accuracy_ratio", "{{model}}")],
                "percentunit",
                **alerting("ModelAccuracyLow", "%"),
            ),
            row("Orders"),
            graph(
                "Orders by status",
                [Query(f"sum by (status) (rate({orders}[$__rate_interval]))", "{{status}}")],
                "ops",
            ),
            graph(
                "Order reject ratio by broker (15m)",
                [
                    Query(
                        f"sum by (broker) (rate(finance_orders_total{rejected}[15m])) / "
                        f"sum by (broker) (rate({orders}[15m]))",
                        "{{broker}}",
                    )
                ],
                "percentunit",
                **alerting("OrderRejectRatioHigh", "%"),
            ),
            graph(
                "Trading volume per hour",
                [
                    Query(
                        f"sum by (broker) (increase(finance_trading_volume_usd_total{broker}[1h]))",
                        "{{broker}}",
                    )
                ],
                "currencyUSD",
            ),
            graph(
                "Order queue depth",
                [Query("finance_order_queue_depth", "{{priority}}")],
                "short",
                **alerting("OrderQueueBacklog"),
            ),
            row("Market data"),
            graph(
                "Market data age",
                [Query("finance_market_data_age_seconds", "{{provider}}")],
                "s",
                width=24,
                **alerting("MarketDataStale", "s"),
            ),
        ],
        [
            variable("strategy", "finance_signals_generated_total", "strategy"),
            variable("broker", "finance_orders_total", "broker"),
        ],
    )


def portfolio() -> Content:
    """Portfolio and risk (uid portfolio-risk)."""
    return Content(
        [
            row("Assets"),
            single(
                "Assets under management",
                [Query("sum(finance_assets_under_management_usd)", "AUM")],
                "currencyUSD",
                width=8,
            ),
            single(
                "Value at risk (95%)",
                [Query("sum(finance_portfolio_var95_usd)", "VaR 95%")],
                "currencyUSD",
                width=8,
            ),
            single(
                "Open positions",
                [Query("sum(finance_open_positions)", "positions")],
                "short",
                width=8,
            ),
            graph(
                "AUM by account type",
                [Query("finance_assets_under_management_usd", "{{account_type}}")],
                "currencyUSD",
            ),
            graph(
                "Daily return by account type",
                [Query("finance_portfolio_daily_return_ratio", "{{account_type}}")],
                "percentunit",
            ),
            row("Risk"),
            graph(
                "Value at risk (95%, one day) by account type",
                [Query("finance_portfolio_var95_usd", "{{account_type}}")],
                "currencyUSD",
            ),
            graph(
                "Open positions by account type",
                [Query("finance_open_positions", "{{account_type}}")],
                "short",
            ),
        ]
    )
