"""Over seeded history, every catalogued metric has the value the data implies.

Expected values are recomputed here with SQL written independently of the exporters' queries
(FILTER clauses, window functions, other join shapes), and the exposition passes promtool.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import psycopg
import pytest
import redis

from finance_demo.seed import SeedPlan, seed_postgres, seed_redis
from finance_exporter.cli import build
from finance_exporter.config import Options, load_settings
from finance_exporter.domains import DOMAINS
from finance_exporter.snapshot import SystemClock
from finance_exporter.spec import MetricSpec
from support.datastores import ANCHOR, Database, RedisDb
from support.exposition import by_label, fetch, metrics_url, parse

PAYMENTS = 20_000
Expected = dict[tuple[str, ...], float]


@dataclass(frozen=True)
class Seeded:
    database: Database
    redis: RedisDb


# Seeded once per module: every test here only reads the data and the first bodies.
@pytest.fixture(scope="module")
def seeded(module_database: Database, module_redis_db: RedisDb) -> Seeded:
    plan = SeedPlan(payments=PAYMENTS, seed=7, anchor=ANCHOR)
    with psycopg.connect(module_database.admin_url) as conn:
        seed_postgres(conn, plan)
        conn.commit()
        seed_redis(
            redis.Redis.from_url(module_redis_db.admin_url, decode_responses=True), conn, plan
        )
    return Seeded(module_database, module_redis_db)


@pytest.fixture(scope="module")
def bodies(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The first /metrics body of each exporter over the seeded data."""
    result = {}
    for name in DOMAINS:
        settings = load_settings(
            Options(
                exporter=name,
                environ={
                    "DATABASE_URL": seeded.database.exporter_url,
                    "REDIS_URL": seeded.redis.exporter_url,
                },
                listen="127.0.0.1:0",
                checkpoint_dir=str(tmp_path_factory.mktemp(f"checkpoint-{name}")),
            )
        )
        exporter = build(settings, SystemClock())
        thread = threading.Thread(target=exporter.server.serve_forever, daemon=True)
        thread.start()
        try:
            assert exporter.wait_backfilled(timeout_seconds=120)
            status, body = fetch(metrics_url(exporter))
        finally:
            exporter.server.shutdown()
            thread.join(timeout=10)
            exporter.close()
        assert status == 200
        result[name] = body
    return result


def rows(admin_url: str, sql: str) -> Expected:
    with psycopg.connect(admin_url) as conn:
        return {
            tuple(str(v) for v in row[:-1]): float(Decimal(str(row[-1])))
            for row in conn.execute(sql).fetchall()
        }


EXPECTED_SQL = {
    "finance_payments_gross_amount_total": """
        SELECT currency, plan, source, sum(amount) FILTER (WHERE status = 'succeeded')
        FROM payments GROUP BY 1, 2, 3 HAVING count(*) FILTER (WHERE status = 'succeeded') > 0""",
    "finance_refunds_amount_total": """
        SELECT p.currency, p.plan, p.source, sum(r.amount)
        FROM payments p JOIN refunds r ON r.payment_id = p.id GROUP BY 1, 2, 3""",
    "finance_payments_total": """
        SELECT status, method, count(*) FROM payments WHERE status IN ('succeeded', 'failed')
        GROUP BY 1, 2""",
    "finance_monthly_recurring_revenue_amount": """
        SELECT currency, plan,
               sum(amount / CASE WHEN billing_period = 'yearly' THEN 12 ELSE 1 END)
        FROM subscriptions WHERE status NOT IN ('trialing', 'canceled') GROUP BY 1, 2""",
    "finance_active_subscriptions": """
        SELECT plan, count(*) FROM subscriptions WHERE status NOT IN ('trialing', 'canceled')
        GROUP BY 1""",
    "finance_active_users": """
        SELECT tier, count(*) FROM users
        WHERE status <> 'churned'
          AND date(timezone('UTC', last_active_at)) + 30 >= date(timezone('UTC', now()))
        GROUP BY 1""",
    "finance_user_signups_total": "SELECT tier, count(*) FROM users GROUP BY 1",
    "finance_user_churns_total": """
        SELECT tier, count(*) FROM users WHERE churned_at IS NOT NULL GROUP BY 1""",
    "finance_signals_generated_total": """
        SELECT strategy, timeframe, count(*) FROM signals GROUP BY 1, 2""",
    "finance_signals_closed_total": """
        SELECT strategy, outcome, count(*) FROM signals WHERE status = 'closed' GROUP BY 1, 2""",
    "finance_prediction_accuracy_ratio": """
        SELECT model, accuracy FROM (
            SELECT model, accuracy,
                   row_number() OVER (PARTITION BY model ORDER BY evaluated_at DESC) AS n
            FROM model_evaluations) AS ranked
        WHERE n = 1""",
    "finance_assets_under_management_usd": """
        SELECT p.account_type, sum(s.value_usd) FROM portfolios p
        JOIN portfolio_daily_snapshots s ON s.portfolio_id = p.id
        WHERE s.day = (SELECT day FROM portfolio_daily_snapshots ORDER BY day DESC LIMIT 1)
        GROUP BY 1""",
    "finance_portfolio_daily_return_ratio": """
        SELECT p.account_type,
               sum(s.value_usd * s.daily_return::numeric) / sum(s.value_usd)
        FROM portfolios p JOIN portfolio_daily_snapshots s ON s.portfolio_id = p.id
        WHERE s.day = (SELECT day FROM portfolio_daily_snapshots ORDER BY day DESC LIMIT 1)
        GROUP BY 1""",
    "finance_portfolio_var95_usd": """
        SELECT p.account_type, sum(s.var95_usd) FROM portfolios p
        JOIN portfolio_daily_snapshots s ON s.portfolio_id = p.id
        WHERE s.day = (SELECT day FROM portfolio_daily_snapshots ORDER BY day DESC LIMIT 1)
        GROUP BY 1""",
    "finance_trading_volume_usd_total": """
        SELECT broker, segment, sum(notional_usd) FROM trades GROUP BY 1, 2""",
    "finance_orders_total": """
        SELECT broker, segment, order_type, status, count(*) FROM orders
        WHERE status NOT IN ('pending', 'open') GROUP BY 1, 2, 3, 4""",
    "finance_open_positions": """
        SELECT p.account_type, count(*) FROM portfolios p
        JOIN positions x ON x.portfolio_id = p.id AND x.status = 'open' GROUP BY 1""",
    "finance_signals_active": """
        SELECT strategy, count(*) FROM signals WHERE status = 'active' GROUP BY 1""",
}


def spec(name: str) -> MetricSpec:
    return next(q.metric for qs in DOMAINS.values() for q in qs if q.metric.name == name)


def exposed(bodies: dict[str, str], metric: MetricSpec) -> Expected:
    return by_label(parse("".join(bodies.values())), metric.name, *metric.labels)


@pytest.mark.parametrize("name", sorted(EXPECTED_SQL))
def test_metric_equals_independent_sql(name: str, seeded: Seeded, bodies: dict[str, str]) -> None:
    expected = rows(seeded.database.admin_url, EXPECTED_SQL[name])
    assert expected, f"the seed left {name} without data"
    got = exposed(bodies, spec(name))
    assert got == pytest.approx(expected, rel=1e-9)


def test_generation_time_histogram_equals_independent_sql(
    seeded: Seeded, bodies: dict[str, str]
) -> None:
    metric = spec("finance_signal_generation_seconds")
    samples = parse(bodies["signals"])
    buckets = by_label(samples, "finance_signal_generation_seconds_bucket", "strategy", "le")
    counts = by_label(samples, "finance_signal_generation_seconds_count", "strategy")
    sums = by_label(samples, "finance_signal_generation_seconds_sum", "strategy")
    with psycopg.connect(seeded.database.admin_url) as conn:
        for (strategy,) in conn.execute("SELECT DISTINCT strategy FROM signals").fetchall():
            for bound in (*metric.buckets, float("inf")):
                row = conn.execute(
                    "SELECT count(*) FROM signals WHERE strategy = %s AND generation_seconds <= %s",
                    (strategy, bound),
                ).fetchone()
                le = "+Inf" if bound == float("inf") else repr(float(bound))
                assert row is not None and buckets[(strategy, le)] == row[0], (strategy, le)
            row = conn.execute(
                "SELECT count(*), sum(generation_seconds) FROM signals WHERE strategy = %s",
                (strategy,),
            ).fetchone()
            assert row is not None
            assert counts[(strategy,)] == row[0]
            assert sums[(strategy,)] == pytest.approx(row[1], rel=1e-9)
    assert len(counts) == 5


def test_redis_metrics_equal_the_keys(seeded: Seeded, bodies: dict[str, str]) -> None:
    admin = redis.Redis.from_url(seeded.redis.admin_url, decode_responses=True)
    samples = parse(bodies["portfolio"])
    depth = by_label(samples, "finance_order_queue_depth", "priority")
    assert depth == {
        (p,): float(admin.llen(f"orders:queue:{p}")) for p in ("high", "normal", "low")
    }
    queued = rows(
        seeded.database.admin_url,
        "SELECT 'all', count(*) FROM orders WHERE status IN ('open', 'pending')",
    )
    assert sum(depth.values()) == queued[("all",)]
    ages = by_label(samples, "finance_market_data_age_seconds", "provider")
    now = time.time()
    for provider in ("polygon", "binance", "alpaca", "oanda"):
        raw = admin.get(f"md:last_tick:{provider}")
        if raw is None:
            assert ages[(provider,)] == math.inf  # a provider that never ticked
            continue
        assert 0 <= ages[(provider,)] <= now - float(raw) + 0.5


def test_every_catalogued_metric_is_exposed_within_its_series_budget(
    bodies: dict[str, str],
) -> None:
    samples = parse("".join(bodies.values()))
    for queries in DOMAINS.values():
        for query in queries:
            metric = query.metric
            names = {metric.name}
            if metric.kind == "histogram":
                names = {f"{metric.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
            lines = sum(len(samples.get(sample, {})) for sample in names)
            assert 0 < lines <= metric.series_budget(), (metric.name, lines)


def test_exposition_passes_promtool_check_metrics(bodies: dict[str, str]) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: tests/run.sh builds it (pinned-go.sh)"
    for name, body in bodies.items():
        result = subprocess.run(
            [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (name, result.stdout, result.stderr)
        assert result.stdout.strip() == "" and result.stderr.strip() == "", (name, result.stderr)
