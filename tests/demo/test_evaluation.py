"""The trading side's model evaluation (evaluation.py), run as the platform role: each model
is scored on its decided signals closed within the window, and only with enough of them."""

from __future__ import annotations

import secrets

import psycopg

from finance_demo.access import POSTGRES_PLATFORM_ROLE, set_postgres_platform_password
from finance_demo.platform.datastores import PostgresPool
from finance_demo.platform.evaluation import evaluate_models
from support.datastores import Database
from support.servers import PostgresServer

# (model, outcome, closed how long ago, how many)
CLOSED = [
    ("lstm_v3", "success", "1 minute", 6),
    ("lstm_v3", "failure", "10 minutes", 4),
    ("lstm_v3", "expired", "1 minute", 5),  # predicted nothing: not counted either way
    ("lstm_v3", "failure", "2 hours", 30),  # outside the window
    ("xgboost_v7", "success", "1 minute", 4),  # too few to score
    ("ensemble_v1", "success", "2 hours", 20),  # none in the window
]


def test_each_model_is_scored_on_its_decided_signals_in_the_window(
    database: Database, postgres_server: PostgresServer
) -> None:
    password = secrets.token_urlsafe(16)
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        set_postgres_platform_password(conn, password)
        for model, outcome, ago, count in CLOSED:
            conn.execute(
                "INSERT INTO signals (strategy, timeframe, model, symbol, direction, confidence,"
                " generation_seconds, status, outcome, created_at, closed_at)"
                " SELECT 'momentum', '5m', %s, 'AAPL', 'long', 0.7, 0.1, 'closed', %s,"
                " now() - %s::interval - interval '1 hour', now() - %s::interval"
                " FROM generate_series(1, %s)",
                (model, outcome, ago, ago, count),
            )
    pool = PostgresPool(postgres_server.url(POSTGRES_PLATFORM_ROLE, password, database.name))
    try:
        scored = evaluate_models(pool, window_seconds=1800, min_decided=5)
    finally:
        pool.close()
    assert scored == {"lstm_v3": 0.6}
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT model, accuracy, evaluated_at > now() - interval '1 minute'"
            " FROM model_evaluations"
        ).fetchall()
    assert rows == [("lstm_v3", 0.6, True)]
