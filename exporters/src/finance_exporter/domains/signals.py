"""Signals: AI trading signals generated, closed and active, generation time, model accuracy."""

from __future__ import annotations

from finance_exporter.spec import MetricSpec, QuerySpec, RedisRead, xid_range

STRATEGIES = ("momentum", "mean_reversion", "breakout", "sentiment", "ml_ensemble")
GENERATION_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

SIGNALS_GENERATED = QuerySpec(
    name="signals_generated",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_signals_generated_total",
        kind="counter",
        help="Trading signals generated, by strategy and timeframe.",
        labels=("strategy", "timeframe"),
        max_series=25,
    ),
    sql=f"""
SELECT strategy, timeframe, count(*) AS value
FROM signals
WHERE {xid_range("created_xid")}
GROUP BY strategy, timeframe
""",
)

SIGNALS_CLOSED = QuerySpec(
    name="signals_closed",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_signals_closed_total",
        kind="counter",
        help="Trading signals closed, by strategy and outcome (success, failure, expired).",
        labels=("strategy", "outcome"),
        max_series=15,
    ),
    sql=f"""
SELECT strategy, outcome, count(*) AS value
FROM signals
WHERE {xid_range("closed_xid")}
GROUP BY strategy, outcome
""",
)

# Bucket bounds are passed as a parameter; a row above the last bound has le NULL (+Inf).
GENERATION_TIME = QuerySpec(
    name="signal_generation_time",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_signal_generation_seconds",
        kind="histogram",
        help="Time the AI models took to generate a signal.",
        labels=("strategy",),
        max_series=5,
        buckets=GENERATION_BUCKETS_SECONDS,
    ),
    sql=f"""
SELECT s.strategy, b.le, count(*) AS count, sum(s.generation_seconds) AS sum
FROM signals AS s
CROSS JOIN LATERAL (
    SELECT min(bound) AS le FROM unnest(%(buckets)s::float8[]) AS bound
    WHERE s.generation_seconds <= bound
) AS b
WHERE {xid_range("s.created_xid")}
GROUP BY s.strategy, b.le
""",
)

MODEL_ACCURACY = QuerySpec(
    name="model_accuracy",
    source="postgres",
    metric=MetricSpec(
        name="finance_prediction_accuracy_ratio",
        kind="gauge",
        help="Prediction accuracy (0..1) of each model at its latest evaluation.",
        labels=("model",),
        max_series=20,
    ),
    # A skip scan of the (model, evaluated_at DESC) index: one probe per model for the next
    # model name and one for its newest row, where DISTINCT ON would read every evaluation ever.
    sql="""
WITH RECURSIVE models AS (
    SELECT min(model) AS model FROM model_evaluations
    UNION ALL
    SELECT (SELECT min(e.model) FROM model_evaluations AS e WHERE e.model > m.model)
    FROM models AS m
    WHERE m.model IS NOT NULL
)
SELECT m.model, latest.accuracy AS value
FROM models AS m
CROSS JOIN LATERAL (
    SELECT e.accuracy FROM model_evaluations AS e
    WHERE e.model = m.model
    ORDER BY e.evaluated_at DESC
    LIMIT 1
) AS latest
""",
)

ACTIVE_SIGNALS = QuerySpec(
    name="signals_active",
    source="redis",
    metric=MetricSpec(
        name="finance_signals_active",
        kind="gauge",
        help="Open trading signals, from the Redis set of active signal ids per strategy.",
        labels=("strategy",),
        max_series=len(STRATEGIES),
    ),
    redis=RedisRead(command="scard", key_template="signals:active:{}", label_values=STRATEGIES),
)

QUERIES: tuple[QuerySpec, ...] = (
    SIGNALS_GENERATED,
    SIGNALS_CLOSED,
    GENERATION_TIME,
    MODEL_ACCURACY,
    ACTIVE_SIGNALS,
)
