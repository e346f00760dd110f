"""The seed's INSERT ... SELECT statements for users, revenue and signals, in the order they run.

Determinism: random() follows the session's setseed(), so every statement draws its random numbers
in exactly one place, a MATERIALIZED CTE named d that reads generate_series (or an ORDER BY id
subquery) row by row; everything else is arithmetic on those draws and primary-key joins, whose
results do not depend on the plan. Ids are set explicitly for the same reason.
"""

from __future__ import annotations

A = "%(anchor)s::timestamptz"
# Box-Muller: a standard normal from two uniform draws (1 - random() is never 0).
NORMAL = "sqrt(-2 * ln(1 - {0})) * cos(2 * pi() * {1})"


def price(idx: str, ts: str) -> str:
    """SQL price of instrument idx at time ts: the wave of catalog.price_at."""
    return (
        f"(%(prices)s::float8[])[{idx}] * (1 + %(wave_amplitude)s::float8 * sin("
        f"extract(epoch FROM {A} - {ts})::float8 / 86400 / %(wave_days)s::float8 + {idx}))"
    )


def quantity(segment: str, notional: str, price: str, multiplier: str) -> str:
    """SQL quantity buying about `notional` USD, in the lot each segment trades in."""
    units = f"({notional}) / (({price}) * ({multiplier}))"
    return f"""CASE {segment}
        WHEN 'crypto' THEN greatest(0.000001, round(({units})::numeric, 6))
        WHEN 'forex' THEN greatest(1000, round(({units})::numeric / 1000) * 1000)
        ELSE greatest(1, round(({units})::numeric)) END"""


USERS = f"""
WITH d AS MATERIALIZED (
    SELECT g, random() AS r_tier, random() AS r_age, random() AS r_churn, random() AS r_churn_at,
           random() AS r_seen
    FROM generate_series(1, %(rows)s::bigint) AS g
), u AS (
    SELECT g, r_seen,
           CASE WHEN r_tier < 0.45 THEN 'free' WHEN r_tier < 0.73 THEN 'basic'
                WHEN r_tier < 0.93 THEN 'pro' ELSE 'enterprise' END AS tier,
           -- Sign-ups grow through the year: the density rises linearly towards the anchor.
           {A} - interval '365 days' * (1 - sqrt(r_age)) AS created_at,
           r_churn < 0.05 AS churned, r_churn_at
    FROM d
), c AS (
    SELECT u.*,
           CASE WHEN churned THEN created_at + ({A} - created_at) * r_churn_at END AS churned_at
    FROM u
)
INSERT INTO users (id, email, tier, status, created_at, last_active_at, churned_at, churned_xid)
SELECT g, 'user' || g || '@example.com', tier, CASE WHEN churned THEN 'churned' ELSE 'active' END,
       created_at,
       -- Exponential recency, 25-day mean: about 7 in 10 users were seen in the last 30 days.
       greatest(created_at, coalesce(churned_at, {A}) - interval '1 day' * (-25 * ln(1 - r_seen))),
       churned_at, CASE WHEN churned THEN pg_current_xact_id() END
FROM c
"""

SUBSCRIPTIONS = f"""
WITH d AS MATERIALIZED (
    SELECT u.*, random() AS r_period, random() AS r_price, random() AS r_currency,
           random() AS r_status, random() AS r_start, random() AS r_cancel
    FROM (SELECT id, tier, status, created_at, churned_at, row_number() OVER (ORDER BY id) AS sid
          FROM users WHERE tier <> 'free' ORDER BY id) AS u
), s AS (
    SELECT sid, id AS user_id, tier AS plan, churned_at, r_cancel,
           CASE WHEN r_period < 0.75 THEN 'monthly' ELSE 'yearly' END AS billing_period,
           CASE tier WHEN 'basic' THEN 9.99 WHEN 'pro' THEN 49.99
                -- Enterprise contracts are often negotiated around the 499.00 list price.
                ELSE CASE WHEN r_price < 0.6 THEN 499.00
                          ELSE round((399 + 400 * r_price)::numeric) END END AS monthly,
           CASE WHEN r_currency < 0.68 THEN 'USD' WHEN r_currency < 0.88 THEN 'EUR'
                ELSE 'GBP' END AS currency,
           CASE WHEN status = 'churned' THEN 'canceled'
                WHEN created_at > {A} - interval '14 days' AND r_status < 0.5 THEN 'trialing'
                WHEN r_status < 0.07 THEN 'past_due' WHEN r_status < 0.13 THEN 'canceled'
                ELSE 'active' END AS status,
           created_at + least(interval '3 days', {A} - created_at) * r_start AS started_at
    FROM d
)
INSERT INTO subscriptions (id, user_id, plan, billing_period, amount, currency, status, started_at,
                           canceled_at)
SELECT sid, user_id, plan, billing_period,
       -- Yearly billing: ten months' price for twelve.
       CASE billing_period WHEN 'yearly' THEN monthly * 10 ELSE monthly END, currency, status,
       started_at,
       CASE WHEN status = 'canceled'
            THEN coalesce(churned_at, started_at + ({A} - started_at) * r_cancel) END
FROM s
"""

PAYMENTS = f"""
WITH d AS MATERIALIZED (
    SELECT g, 1 + floor(random() * %(subscriptions)s)::bigint AS sid, random() AS r_status,
           random() AS r_amount, random() AS r_prorate, random() AS r_method, random() AS r_source,
           random() AS r_time
    FROM generate_series(1, %(rows)s::bigint) AS g
), p AS (
    SELECT d.*, s.user_id, s.currency, s.plan, s.amount AS list_amount, s.started_at,
           coalesce(s.canceled_at, {A}) AS ended_at,
           CASE WHEN r_status < 0.92 THEN 'succeeded' WHEN r_status < 0.98 THEN 'failed'
                ELSE 'pending' END AS status
    FROM d JOIN subscriptions AS s ON s.id = d.sid
)
INSERT INTO payments (id, user_id, subscription_id, amount, currency, plan, method, source, status,
                      created_at, final_xid)
SELECT g, user_id, sid,
       -- Mostly the plan price; upgrades and partial periods are prorated.
       CASE WHEN r_amount < 0.9 THEN list_amount
            ELSE round(list_amount * (0.2 + 0.8 * r_prorate)::numeric, 2) END,
       currency, plan,
       CASE WHEN r_method < 0.68 THEN 'card' WHEN r_method < 0.84 THEN 'paypal'
            WHEN r_method < 0.94 THEN 'bank_transfer' ELSE 'crypto' END,
       CASE WHEN r_source < 0.58 THEN 'web' WHEN r_source < 0.90 THEN 'mobile' ELSE 'api' END,
       status,
       -- Pending payments are the ones still in flight: from the last two days.
       CASE WHEN status = 'pending' THEN greatest(started_at, {A} - interval '2 days' * r_time)
            ELSE started_at + (ended_at - started_at) * r_time END,
       CASE WHEN status <> 'pending' THEN pg_current_xact_id() END
FROM p
"""

# Draws random payments and keeps the succeeded ones, each refunded at most once.
REFUNDS = f"""
WITH d AS MATERIALIZED (
    SELECT g, 1 + floor(random() * %(payments)s)::bigint AS pid, random() AS r_full,
           random() AS r_part, random() AS r_reason, random() AS r_delay
    FROM generate_series(1, %(rows)s::bigint) AS g
), r AS (
    SELECT DISTINCT ON (d.pid) d.*, p.amount, p.created_at
    FROM d JOIN payments AS p ON p.id = d.pid AND p.status = 'succeeded'
    ORDER BY d.pid, d.g
)
INSERT INTO refunds (id, payment_id, amount, reason, created_at)
SELECT row_number() OVER (ORDER BY pid), pid,
       CASE WHEN r_full < 0.7 THEN amount ELSE round(amount * (0.1 + 0.8 * r_part)::numeric, 2) END,
       CASE WHEN r_reason < 0.8 THEN 'requested_by_customer' WHEN r_reason < 0.93 THEN 'duplicate'
            ELSE 'fraudulent' END,
       created_at + least(interval '14 days', {A} - created_at) * r_delay
FROM r
"""

SIGNALS = f"""
WITH d AS MATERIALIZED (
    SELECT g, random() AS r_strategy, random() AS r_timeframe, random() AS r_model,
           random() AS r_symbol, random() AS r_direction, random() AS r_confidence,
           random() AS r_z1, random() AS r_z2, random() AS r_status, random() AS r_outcome,
           random() AS r_age, random() AS r_hold
    FROM generate_series(1, %(rows)s::bigint) AS g
), s AS (
    SELECT d.*,
           CASE WHEN r_strategy < 0.25 THEN 'momentum' WHEN r_strategy < 0.45 THEN 'mean_reversion'
                WHEN r_strategy < 0.65 THEN 'breakout' WHEN r_strategy < 0.80 THEN 'sentiment'
                ELSE 'ml_ensemble' END AS strategy,
           CASE WHEN r_timeframe < 0.15 THEN '1m' WHEN r_timeframe < 0.40 THEN '5m'
                WHEN r_timeframe < 0.70 THEN '1h' WHEN r_timeframe < 0.90 THEN '4h'
                ELSE '1d' END AS timeframe,
           CASE WHEN r_status < 0.15 THEN 'active' ELSE 'closed' END AS status
    FROM d
), m AS (
    SELECT s.*,
           -- The ensemble strategy runs the ensemble model; the others any model.
           CASE WHEN strategy = 'ml_ensemble' THEN %(ensemble)s::int
                ELSE 1 + floor(r_model * %(model_count)s)::int END AS k,
           -- How long a signal lives: a few bars of its timeframe.
           CASE timeframe WHEN '1m' THEN interval '30 minutes' WHEN '5m' THEN interval '2 hours'
                WHEN '1h' THEN interval '1 day' WHEN '4h' THEN interval '3 days'
                ELSE interval '10 days' END AS horizon
    FROM s
), t AS (
    SELECT m.*,
           CASE WHEN status = 'active' THEN {A} - horizon * r_age
                ELSE {A} - horizon - (interval '365 days' - horizon) * r_age END AS created_at,
           CASE WHEN status = 'active' THEN NULL WHEN r_outcome < 0.48 THEN 'success'
                WHEN r_outcome < 0.85 THEN 'failure' ELSE 'expired' END AS outcome
    FROM m
)
INSERT INTO signals (id, strategy, timeframe, model, symbol, direction, confidence,
                     generation_seconds, status, outcome, created_at, closed_at, closed_xid)
SELECT g, strategy, timeframe, (%(models)s::text[])[k],
       (%(symbols)s::text[])[1 + floor(r_symbol * %(signal_symbols)s)::int],
       CASE WHEN r_direction < 0.56 THEN 'long' ELSE 'short' END,
       round((0.5 + 0.49 * sqrt(r_confidence))::numeric, 4)::float8,
       -- Log-normal around a per-model median (heavier models are slower), kept in 0.02..40 s.
       least(40, greatest(0.02, round(((%(generation_medians)s::float8[])[k]
             * exp(1.1 * {NORMAL.format("r_z1", "r_z2")}))::numeric, 4)::float8)),
       status, outcome, created_at,
       CASE WHEN outcome = 'expired' THEN created_at + horizon
            WHEN status = 'closed' THEN created_at + horizon * r_hold END,
       CASE WHEN status = 'closed' THEN pg_current_xact_id() END
FROM t
"""

# Nightly evaluations over the last 30 days; each model drifts slowly around its own level.
MODEL_EVALUATIONS = f"""
WITH d AS MATERIALIZED (
    SELECT g, random() AS r_noise, random() AS r_time
    FROM generate_series(0, %(rows)s::bigint - 1) AS g
)
INSERT INTO model_evaluations (id, model, accuracy, evaluated_at)
SELECT g + 1, (%(models)s::text[])[k],
       round(least(0.9, greatest(0.45, (%(accuracy_levels)s::float8[])[k]
             + (%(accuracy_drifts)s::float8[])[k] * day + 0.05 * (r_noise - 0.5)))::numeric, 4),
       {A} - interval '1 day' * (%(per_model)s - 1 - day) - interval '1 hour' * (2 + 3 * r_time)
FROM (SELECT d.*, (g / %(per_model)s)::int + 1 AS k, mod(g, %(per_model)s) AS day FROM d) AS e
"""
