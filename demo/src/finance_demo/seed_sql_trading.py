"""The seed's statements for the trading side: portfolios, positions, snapshots, orders, trades.

Same rules as seed_sql: random numbers are drawn only in the MATERIALIZED CTE d.
"""

from __future__ import annotations

from finance_demo.catalog import VAR95_SIGMAS, account_risk_values
from finance_demo.seed_sql import NORMAL, A, price, quantity

_Z = NORMAL.format("r_z1", "r_z2")
_POSITION_QUANTITY = quantity("segment", "notional", "price", "(%(multipliers)s::int[])[idx]")
_ORDER_QUANTITY = quantity(
    "(%(segments)s::text[])[idx]",
    "power(10, 2 + 2.7 * r_notional)",
    "(%(prices)s::float8[])[idx]",
    "(%(multipliers)s::int[])[idx]",
)
_TRADE_PRICE = price("idx", "executed_at")

PORTFOLIOS = f"""
WITH d AS MATERIALIZED (
    SELECT g, 1 + floor(random() * %(users)s)::bigint AS uid, random() AS r_type,
           random() AS r_created
    FROM generate_series(1, %(rows)s::bigint) AS g
)
INSERT INTO portfolios (id, user_id, account_type, created_at)
SELECT g, uid,
       CASE WHEN r_type < 0.55 THEN 'individual' WHEN r_type < 0.70 THEN 'joint'
            WHEN r_type < 0.92 THEN 'retirement' ELSE 'institutional' END,
       -- Most portfolios are opened soon after sign-up.
       u.created_at + ({A} - u.created_at) * (r_created * r_created)
FROM d JOIN users AS u ON u.id = d.uid
"""

POSITIONS = f"""
WITH d AS MATERIALIZED (
    SELECT g, (g - 1) / %(per_portfolio)s + 1 AS pid,
           1 + floor(random() * %(instruments)s)::int AS idx, random() AS r_notional,
           random() AS r_price, random() AS r_status, random() AS r_open, random() AS r_close
    FROM generate_series(1, %(rows)s::bigint) AS g
), x AS (
    SELECT d.*, (%(segments)s::text[])[idx] AS segment, (%(prices)s::float8[])[idx] AS price,
           -- Institutional books hold far larger positions.
           power(10, 2.3 + 2.2 * r_notional) * CASE p.account_type WHEN 'institutional' THEN 50
                ELSE 1 END AS notional,
           p.created_at + ({A} - p.created_at) * r_open AS opened_at
    FROM d JOIN portfolios AS p ON p.id = d.pid
)
INSERT INTO positions (id, portfolio_id, symbol, quantity, avg_price, status, opened_at, closed_at)
SELECT g, pid, (%(symbols)s::text[])[idx],
       {_POSITION_QUANTITY},
       round((price * (0.75 + 0.5 * r_price))::numeric,
             CASE segment WHEN 'forex' THEN 5 ELSE 2 END),
       CASE WHEN r_status < 0.8 THEN 'open' ELSE 'closed' END, opened_at,
       CASE WHEN r_status >= 0.8 THEN opened_at + ({A} - opened_at) * r_close END
FROM x
"""

# Each portfolio's value walks through the last 30 days: its daily return is a shared market move
# (per day, scaled by the account type's beta) plus its own noise; VaR95 is 1.645 sigma of value.
SNAPSHOTS = f"""
WITH d AS MATERIALIZED (
    SELECT g, (g - 1) / %(days)s + 1 AS pid, mod(g - 1, %(days)s)::int AS k, random() AS r_z1,
           random() AS r_z2, random() AS r_base, random() AS r_var
    FROM generate_series(1, %(rows)s::bigint) AS g
), r AS (
    SELECT d.*, a.beta, a.idio, a.base_log10, a.spread_log10,
           sqrt(a.beta * a.beta * %(market_sigma)s::float8 ^ 2 + a.idio * a.idio) AS sigma,
           greatest(-0.2, least(0.2, a.beta * (%(market)s::float8[])[k + 1]
                + a.idio * {_Z})) AS ret
    FROM d JOIN portfolios AS p ON p.id = d.pid
    -- Per account type: market beta, own daily volatility, log10 of the value's range.
    JOIN (VALUES {account_risk_values()}) AS a (account_type, beta, idio, base_log10, spread_log10)
         ON a.account_type = p.account_type
), w AS (
    SELECT r.*, first_value(r_base) OVER win AS base_r, sum(ln(1 + ret)) OVER win AS growth
    FROM r WINDOW win AS (PARTITION BY pid ORDER BY k)
), v AS (
    SELECT w.*, power(10, base_log10 + spread_log10 * base_r) * exp(growth) AS value
    FROM w
)
-- The numeric(20, 2) columns round the float values on assignment.
INSERT INTO portfolio_daily_snapshots (portfolio_id, day, value_usd, daily_return, var95_usd)
SELECT pid, %(anchor_day)s::date - (%(days)s - 1 - k), value, ret,
       {VAR95_SIGMAS} * sigma * value * (0.9 + 0.2 * r_var)
FROM v
"""

ORDERS = f"""
WITH d AS MATERIALIZED (
    SELECT g, 1 + floor(random() * %(portfolios)s)::bigint AS pid, random() AS r_segment,
           random() AS r_broker, random() AS r_type, random() AS r_side, random() AS r_symbol,
           random() AS r_notional, random() AS r_status, random() AS r_time
    FROM generate_series(1, %(rows)s::bigint) AS g
), s AS (
    SELECT d.*, p.created_at AS opened_at,
           CASE WHEN r_segment < 0.50 THEN 1 WHEN r_segment < 0.75 THEN 2
                WHEN r_segment < 0.90 THEN 3 ELSE 4 END AS seg,
           CASE WHEN r_status < 0.850 THEN 'filled' WHEN r_status < 0.910 THEN 'canceled'
                WHEN r_status < 0.950 THEN 'rejected' WHEN r_status < 0.980 THEN 'expired'
                WHEN r_status < 0.995 THEN 'open' ELSE 'pending' END AS status
    FROM d JOIN portfolios AS p ON p.id = d.pid
), i AS (
    SELECT s.*, (%(seg_first)s::int[])[seg] + floor(r_symbol * (%(seg_count)s::int[])[seg])::int
           AS idx
    FROM s
)
INSERT INTO orders (id, portfolio_id, broker, segment, order_type, side, symbol, quantity, status,
                    created_at, final_xid)
SELECT g, pid,
       -- Each segment routes mostly to its natural broker.
       CASE seg WHEN 1 THEN CASE WHEN r_broker < 0.6 THEN 'alpaca' ELSE 'interactive_brokers' END
                WHEN 2 THEN CASE WHEN r_broker < 0.85 THEN 'binance' ELSE 'alpaca' END
                WHEN 3 THEN CASE WHEN r_broker < 0.8 THEN 'oanda' ELSE 'interactive_brokers' END
                ELSE CASE WHEN r_broker < 0.7 THEN 'interactive_brokers' ELSE 'alpaca' END END,
       (%(segments)s::text[])[idx],
       CASE WHEN r_type < 0.55 THEN 'market' WHEN r_type < 0.85 THEN 'limit'
            WHEN r_type < 0.93 THEN 'stop' ELSE 'stop_limit' END,
       CASE WHEN r_side < 0.55 THEN 'buy' ELSE 'sell' END,
       (%(symbols)s::text[])[idx],
       {_ORDER_QUANTITY},
       status,
       -- Orders still working were placed in the last six hours.
       CASE WHEN status IN ('open', 'pending')
            THEN greatest(opened_at, {A} - interval '6 hours' * r_time)
            ELSE opened_at + ({A} - opened_at) * r_time END,
       CASE WHEN status NOT IN ('open', 'pending') THEN pg_current_xact_id() END
FROM i
"""

TRADES = f"""
WITH d AS MATERIALIZED (
    SELECT o.*, array_position(%(symbols)s::text[], o.symbol) AS idx, random() AS r_slip,
           random() AS r_latency
    FROM (SELECT row_number() OVER (ORDER BY id) AS tid, id, broker, segment, order_type, symbol,
                 quantity, created_at
          FROM orders WHERE status = 'filled' ORDER BY id) AS o
), e AS (
    SELECT d.*, created_at + least({A} - created_at, CASE order_type WHEN 'market'
               THEN interval '2 seconds' ELSE interval '4 hours' END) * r_latency AS executed_at
    FROM d
), p AS (
    SELECT e.*, round(({_TRADE_PRICE} * (1 + 0.004 * (r_slip - 0.5)))::numeric,
                      CASE segment WHEN 'forex' THEN 5 ELSE 2 END) AS price
    FROM e
)
INSERT INTO trades (id, order_id, broker, segment, quantity, price, notional_usd, executed_at)
SELECT tid, id, broker, segment, quantity, price,
       round(quantity * price * (%(multipliers)s::int[])[idx], 2), executed_at
FROM p
"""
