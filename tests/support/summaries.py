"""The gauge summaries (006_gauge_summaries.sql) next to full recounts of their base tables."""

from __future__ import annotations

from decimal import Decimal

import psycopg

Row = tuple[object, ...]
Rows = dict[tuple[object, ...], tuple[object, ...]]

# Per summary table: its non-zero rows, and the same figures recounted from the live tables with
# SQL written independently of the triggers (FILTER, other casts). Keys first, then values.
SUMMARY_RECOUNTS: dict[str, tuple[str, str]] = {
    "subscription_live_totals": (
        "SELECT currency, plan, subscriptions, mrr_amount FROM subscription_live_totals"
        " WHERE subscriptions <> 0 OR mrr_amount <> 0",
        "SELECT currency, plan, count(*),"
        " sum(amount / CASE WHEN billing_period = 'yearly' THEN 12 ELSE 1 END)"
        " FROM subscriptions WHERE status NOT IN ('trialing', 'canceled') GROUP BY 1, 2",
    ),
    "user_activity_days": (
        "SELECT day, tier, users FROM user_activity_days WHERE users <> 0",
        "SELECT date(timezone('UTC', last_active_at)), tier, count(*) FROM users"
        " WHERE status <> 'churned' GROUP BY 1, 2",
    ),
    "open_position_totals": (
        "SELECT account_type, positions FROM open_position_totals WHERE positions <> 0",
        "SELECT p.account_type, count(*) FILTER (WHERE x.status = 'open') FROM portfolios p"
        " JOIN positions x ON x.portfolio_id = p.id GROUP BY 1"
        " HAVING count(*) FILTER (WHERE x.status = 'open') > 0",
    ),
    "portfolio_day_totals": (
        "SELECT day, account_type, portfolios, value_usd, weighted_return, var95_usd"
        " FROM portfolio_day_totals WHERE portfolios <> 0",
        "SELECT s.day, p.account_type, count(*), sum(s.value_usd),"
        " sum(s.value_usd * CAST(s.daily_return AS numeric)), sum(s.var95_usd)"
        " FROM portfolio_daily_snapshots s JOIN portfolios p ON p.id = s.portfolio_id"
        " GROUP BY 1, 2",
    ),
}
SUMMARY_TABLES = tuple(SUMMARY_RECOUNTS)
KEYS = {
    "subscription_live_totals": 2,
    "user_activity_days": 2,
    "open_position_totals": 1,
    "portfolio_day_totals": 2,
}


def _keyed(rows: list[Row], keys: int) -> Rows:
    return {tuple(row[:keys]): tuple(_exact(v) for v in row[keys:]) for row in rows}


def _exact(value: object) -> object:
    # numeric and bigint compare exactly as Decimal: no float rounding hides a drift.
    return Decimal(value) if isinstance(value, int) else value


def summaries_and_recounts(conn: psycopg.Connection[Row]) -> dict[str, tuple[Rows, Rows]]:
    """Each summary's rows and its recount, read in one snapshot."""
    result = {}
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for table, (summary, recount) in SUMMARY_RECOUNTS.items():
            keys = KEYS[table]
            result[table] = (
                _keyed(conn.execute(summary.encode()).fetchall(), keys),
                _keyed(conn.execute(recount.encode()).fetchall(), keys),
            )
    return result


def assert_summaries_exact(url: str) -> None:
    """Every summary equals its recount, row for row and digit for digit."""
    with psycopg.connect(url) as conn:
        for table, (summary, recount) in summaries_and_recounts(conn).items():
            assert summary == recount, table
