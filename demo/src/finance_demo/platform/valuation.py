"""The trading service's end-of-day close: one valuation snapshot per portfolio for every day
(UTC) that has ended and has none yet, so assets under management, daily return and VaR move on
with the demo instead of staying at the seed's last day.

The model is the seed's (finance_demo.catalog): each day's return is the account type's beta
times that day's market move plus the portfolio's own noise; VaR95 is 1.645 daily standard
deviations of value. A portfolio opened since its last snapshot starts at a value drawn from its
account type's range. A day is closed in one statement, so every portfolio has that day or none.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, date, datetime, timedelta

from finance_demo.catalog import (
    MARKET_DRIFT,
    MARKET_SIGMA,
    SNAPSHOT_DAYS,
    VAR95_SIGMAS,
    account_risk_values,
)
from finance_demo.platform.datastores import DatastoreUnavailableError, PostgresPool
from finance_demo.platform.logs import current_service
from finance_demo.seed_sql import NORMAL

logger = logging.getLogger(__name__)

CLOSE_INTERVAL_SECONDS = 60.0

CLOSE_DAY = f"""
INSERT INTO portfolio_daily_snapshots (portfolio_id, day, value_usd, daily_return, var95_usd)
SELECT id, %(day)s::date, start_value * (1 + ret), ret,
       {VAR95_SIGMAS} * sigma * start_value * (1 + ret)
FROM (
    SELECT p.id,
           sqrt(a.beta * a.beta * %(market_sigma)s::float8 ^ 2 + a.idio * a.idio) AS sigma,
           greatest(-0.2, least(0.2, a.beta * %(market)s::float8
               + a.idio * {NORMAL.format("random()", "random()")})) AS ret,
           coalesce(last.value_usd::float8,
                    power(10, a.base_log10 + a.spread_log10 * random())) AS start_value
    FROM portfolios AS p
    JOIN (VALUES {account_risk_values()}) AS a (account_type, beta, idio, base_log10, spread_log10)
         ON a.account_type = p.account_type
    LEFT JOIN LATERAL (
        SELECT s.value_usd FROM portfolio_daily_snapshots AS s
        WHERE s.portfolio_id = p.id AND s.day < %(day)s::date
        ORDER BY s.day DESC LIMIT 1
    ) AS last ON true
    WHERE p.created_at < %(day)s::date + 1
) AS r
ON CONFLICT (portfolio_id, day) DO NOTHING
"""


def market_move(day: date) -> float:
    """The shared market return of `day`: the same on every run and in every process."""
    return round(random.Random(day.toordinal()).gauss(MARKET_DRIFT, MARKET_SIGMA), 6)


def close_days(pool: PostgresPool, today: date) -> dict[date, int]:
    """Close every ended day after the latest snapshot (at most the last SNAPSHOT_DAYS); the
    snapshots written per day (0 where another process closed it first)."""
    with pool.transaction() as conn:
        row = conn.execute("SELECT max(day) FROM portfolio_daily_snapshots").fetchone()
    # No snapshot at all: start with yesterday.
    latest = row[0] if row and isinstance(row[0], date) else today - timedelta(days=2)
    first: date = max(latest + timedelta(days=1), today - timedelta(days=SNAPSHOT_DAYS))
    written: dict[date, int] = {}
    day = first
    while day < today:
        with pool.transaction() as conn:
            cursor = conn.execute(
                CLOSE_DAY,
                {"day": day, "market": market_move(day), "market_sigma": MARKET_SIGMA},
            )
            written[day] = cursor.rowcount
        logger.info("day closed", extra={"day": day.isoformat(), "snapshots": written[day]})
        day += timedelta(days=1)
    return written


def run_close(pool: PostgresPool, stop: threading.Event) -> None:
    """Close ended days every CLOSE_INTERVAL_SECONDS until `stop`; outages are waited out."""
    current_service.set("trading")
    while not stop.is_set():
        try:
            close_days(pool, datetime.now(UTC).date())
        except DatastoreUnavailableError:
            pass  # logged once by the pool; the next round retries
        except Exception:
            logger.exception("end-of-day close failed")
        stop.wait(CLOSE_INTERVAL_SECONDS)
