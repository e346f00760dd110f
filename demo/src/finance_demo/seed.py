"""Deterministic seed data for the reference schema (Postgres) and its Redis key conventions.

The same SeedPlan (payments, seed, anchor) always produces identical table contents: rows are
generated server-side by INSERT ... SELECT over generate_series, with random() seeded by setseed()
in one session and one transaction, and every timestamp is computed from the anchor.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
import redis

from finance_demo import bulkload, seed_sql, seed_sql_trading
from finance_demo.catalog import (
    ALLOWED,
    EVALUATIONS_PER_MODEL,
    INSTRUMENTS,
    MARKET_DRIFT,
    MARKET_SIGMA,
    MODELS,
    POSITIONS_PER_PORTFOLIO,
    PRICE_WAVE_AMPLITUDE,
    PRICE_WAVE_DAYS,
    PRIORITIES,
    PROVIDER_SYMBOLS,
    PROVIDERS,
    SNAPSHOT_DAYS,
    STRATEGIES,
    TABLES,
    price_at,
)

MAX_PAYMENTS = 100_000_000
# setseed() takes a double in [-1, 1] and keeps at least 31 bits of it (52 since PostgreSQL 15):
# seeds up to this map to distinct generator states.
MAX_SEED = 2**31 - 2
# Per model (in MODELS order): median generation time (s), accuracy level, accuracy drift per day.
_GENERATION_MEDIANS = (0.4, 0.08, 1.5, 3.0)
# xgboost_v7 degrades over the 30 days but ends above ModelAccuracyLow's 55%: the demo shows
# a trend without raising an alert it did not mean to.
_ACCURACY_LEVELS = (0.62, 0.62, 0.69, 0.74)
_ACCURACY_DRIFTS = (0.001, -0.001, 0.002, 0.0)
# Share of queued orders per priority (high, normal, low).
_PRIORITY_WEIGHTS = (0.2, 0.5, 0.3)
_CHUNK = 10_000
_SERIAL_TABLES = tuple(t for t in TABLES if t != "portfolio_daily_snapshots")

Progress = Callable[[str], None]
Row = tuple[object, ...]


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SeedPlan:
    """How much to generate, from which seed, and the "now" the 365-day history ends at."""

    payments: int
    seed: int = 42
    # A default keeps the field order of the interface; pass an anchor for reproducible data.
    anchor: datetime = field(default_factory=_utc_now)

    def __post_init__(self) -> None:
        if not 1 <= self.payments <= MAX_PAYMENTS:
            raise ValueError(f"payments must be between 1 and {MAX_PAYMENTS}, got {self.payments}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if self.anchor.tzinfo is None or self.anchor.utcoffset() is None:
            raise ValueError("anchor must be timezone-aware (UTC)")
        object.__setattr__(self, "anchor", self.anchor.astimezone(UTC))

    @property
    def users(self) -> int:
        """Users to generate: a tenth of the payments, at least 200."""
        return max(200, self.payments // 10)

    @property
    def signals(self) -> int:
        """Signals to generate: a fifth of the payments, at least 500."""
        return max(500, self.payments // 5)

    @property
    def portfolios(self) -> int:
        """Portfolios to generate: one per three users."""
        return max(1, self.users // 3)

    @property
    def orders(self) -> int:
        """Orders to generate: half the payments."""
        return max(1, self.payments // 2)

    @property
    def refund_draws(self) -> int:
        """Random payments drawn for refunds; the succeeded ones (~92%) are refunded."""
        return max(1, round(self.payments * 0.02))


def _setseed_value(seed: int) -> float:
    # setseed truncates seed * (2**31 - 1) (or * (2**52 - 1)); the +0.5 keeps neighbours apart.
    return (seed + 0.5) / (MAX_SEED + 1)


def _market_moves(seed: int) -> list[float]:
    """Shared daily market return of each snapshot day (Python-side, so no extra SQL draws)."""
    rng = random.Random(seed)
    return [round(rng.gauss(MARKET_DRIFT, MARKET_SIGMA), 6) for _ in range(SNAPSHOT_DAYS)]


def _parameters(plan: SeedPlan) -> dict[str, object]:
    segments = ALLOWED[("orders", "segment")]
    seg_of = [i.segment for i in INSTRUMENTS]
    return {
        "anchor": plan.anchor,
        "anchor_day": plan.anchor.date(),
        "symbols": [i.symbol for i in INSTRUMENTS],
        "prices": [i.price for i in INSTRUMENTS],
        "multipliers": [i.multiplier for i in INSTRUMENTS],
        "segments": seg_of,
        "seg_first": [seg_of.index(s) + 1 for s in segments],
        "seg_count": [seg_of.count(s) for s in segments],
        "instruments": len(INSTRUMENTS),
        # Signals are on underlyings, not option contracts (the last segment of INSTRUMENTS).
        "signal_symbols": len(INSTRUMENTS) - seg_of.count("options"),
        "wave_amplitude": PRICE_WAVE_AMPLITUDE,
        "wave_days": PRICE_WAVE_DAYS,
        "models": list(MODELS),
        "model_count": len(MODELS),
        "ensemble": MODELS.index("ensemble_v1") + 1,
        "generation_medians": list(_GENERATION_MEDIANS),
        "accuracy_levels": list(_ACCURACY_LEVELS),
        "accuracy_drifts": list(_ACCURACY_DRIFTS),
        "per_model": EVALUATIONS_PER_MODEL,
        "per_portfolio": POSITIONS_PER_PORTFOLIO,
        "days": SNAPSHOT_DAYS,
        "market": _market_moves(plan.seed),
        "market_sigma": MARKET_SIGMA,
        "users": plan.users,
        "portfolios": plan.portfolios,
        "payments": plan.payments,
    }


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an integer from the database, got {value!r}")
    return value


def _count(conn: psycopg.Connection[Row], sql: str) -> int:
    row = conn.execute(sql.encode()).fetchone()
    return _int(row[0]) if row else 0


def seed_postgres(
    conn: psycopg.Connection[Row], plan: SeedPlan, progress: Progress | None = None
) -> dict[str, int]:
    """Fill the empty reference tables in one transaction; return the row count of each table."""
    report = progress or (lambda _message: None)
    params = _parameters(plan)
    counts: dict[str, int] = {}

    def insert(table: str, sql: str, rows: int, **extra: object) -> None:
        report(f"seeding {table} ({rows} rows)...")
        counts[table] = conn.execute(sql.encode(), {**params, "rows": rows, **extra}).rowcount
        # Fresh statistics give the next statements (and the exporters) sensible plans.
        conn.execute(f"ANALYZE {table}".encode())

    with conn.transaction():
        # Taken up front (the load alters the tables anyway); also serializes concurrent seeders.
        conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE".encode())
        bulkload.require_empty(conn, TABLES)
        restore = bulkload.defer_constraints(conn, TABLES)
        # One backend draws every random number, in a fixed order: no parallel workers.
        conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        conn.execute("SET LOCAL work_mem = '256MB'")
        conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
        # JIT compilation costs more than it saves on these one-pass statements.
        conn.execute("SET LOCAL jit = off")
        conn.execute("SELECT setseed(%s)", (_setseed_value(plan.seed),))

        insert("users", seed_sql.USERS, plan.users)
        paying = _count(conn, "SELECT count(*) FROM users WHERE tier <> 'free'")
        if not paying:
            raise ValueError("no paying users were generated; increase payments")
        insert("subscriptions", seed_sql.SUBSCRIPTIONS, paying)
        insert("payments", seed_sql.PAYMENTS, plan.payments, subscriptions=counts["subscriptions"])
        insert("refunds", seed_sql.REFUNDS, plan.refund_draws)
        insert("signals", seed_sql.SIGNALS, plan.signals)
        insert("model_evaluations", seed_sql.MODEL_EVALUATIONS, len(MODELS) * EVALUATIONS_PER_MODEL)
        insert("portfolios", seed_sql_trading.PORTFOLIOS, plan.portfolios)
        insert("positions", seed_sql_trading.POSITIONS, plan.portfolios * POSITIONS_PER_PORTFOLIO)
        insert(
            "portfolio_daily_snapshots", seed_sql_trading.SNAPSHOTS, plan.portfolios * SNAPSHOT_DAYS
        )
        insert("orders", seed_sql_trading.ORDERS, plan.orders)
        filled = _count(conn, "SELECT count(*) FROM orders WHERE status = 'filled'")
        insert("trades", seed_sql_trading.TRADES, filled)
        report(f"restoring {len(restore)} indexes and foreign keys (validating every row)...")
        for statement in restore:
            conn.execute(statement.encode())
        bulkload.advance_sequences(conn, _SERIAL_TABLES)
    return {table: counts[table] for table in TABLES}


def _queued_orders(ids: list[int], rng: random.Random) -> dict[str, list[int]]:
    """Spread order ids over the priorities; the first three seed one queue each."""
    queues: dict[str, list[int]] = {p: [] for p in PRIORITIES}
    for position, order_id in enumerate(ids):
        if position < len(PRIORITIES):
            priority = PRIORITIES[position]
        else:
            priority = rng.choices(PRIORITIES, weights=_PRIORITY_WEIGHTS)[0]
        queues[priority].append(order_id)
    return queues


def _ticks(plan: SeedPlan, rng: random.Random) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Last-tick timestamps and per-symbol "price|timestamp" hashes of every provider."""
    index = {instrument.symbol: n + 1 for n, instrument in enumerate(INSTRUMENTS)}
    anchor = plan.anchor.timestamp()
    last: dict[str, str] = {}
    ticks: dict[str, dict[str, str]] = {}
    for provider in PROVIDERS:
        # Feeds are live: their newest tick is a few seconds old at the anchor.
        newest = anchor - rng.uniform(0.2, 4.0)
        last[provider] = f"{newest:.3f}"
        ticks[provider] = {}
        for position, symbol in enumerate(PROVIDER_SYMBOLS[provider]):
            stamp = newest - (0.0 if position == 0 else rng.uniform(0.0, 2.0))
            idx = index[symbol]
            price = price_at(idx, (anchor - stamp) / 86400)
            decimals = 5 if INSTRUMENTS[idx - 1].segment == "forex" else 2
            ticks[provider][symbol] = f"{price:.{decimals}f}|{stamp:.3f}"
    return last, ticks


def _chunks(values: list[int]) -> list[list[int]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def seed_redis(
    client: redis.Redis, conn: psycopg.Connection[Row], plan: SeedPlan
) -> dict[str, int]:
    """Write the Redis keys matching the seeded tables (idempotent); return counts per family."""
    members: dict[str, list[int]] = {}
    with conn.transaction():
        queued = conn.execute(
            "SELECT id FROM orders WHERE status IN ('open', 'pending') ORDER BY id"
        ).fetchall()
        for strategy, ids in conn.execute(
            "SELECT strategy, array_agg(id ORDER BY id) FROM signals WHERE status = 'active'"
            " GROUP BY strategy ORDER BY strategy"
        ):
            members[str(strategy)] = [_int(i) for i in ids] if isinstance(ids, list) else []
    rng = random.Random(plan.seed)
    queues = _queued_orders([_int(row[0]) for row in queued], rng)
    last, ticks = _ticks(plan, rng)

    keys = [f"md:last_tick:{p}" for p in PROVIDERS] + [f"md:ticks:{p}" for p in PROVIDERS]
    keys += [f"orders:queue:{p}" for p in PRIORITIES] + [f"signals:active:{s}" for s in STRATEGIES]
    # MULTI/EXEC: one round trip, and readers never see a half-written set of keys.
    pipe = client.pipeline(transaction=True)
    pipe.delete(*keys)
    for provider in PROVIDERS:
        pipe.set(f"md:last_tick:{provider}", last[provider])
        fields = [part for pair in ticks[provider].items() for part in pair]
        pipe.hset(f"md:ticks:{provider}", items=fields)
    for priority, ids in queues.items():
        for chunk in _chunks(ids):
            pipe.rpush(f"orders:queue:{priority}", *chunk)
    for strategy, ids in members.items():
        for chunk in _chunks(ids):
            pipe.sadd(f"signals:active:{strategy}", *chunk)
    pipe.execute()
    return {
        "md:last_tick": len(last),
        "md:ticks": sum(len(symbols) for symbols in ticks.values()),
        "orders:queue": sum(len(ids) for ids in queues.values()),
        "signals:active": sum(len(ids) for ids in members.values()),
    }
