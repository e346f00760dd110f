"""The trading service: AI signals (opened and closed) and orders (queued, then executed).

Orders go through the Redis queue of their priority: a new order is pushed, and the matching
engine executes the oldest waiting one in the same request, so the queues move but stay level.
Execution gives every order a final status once (the schema's trigger stamps final_xid), and a
fill writes a trade and opens or closes a position. A closing signal's outcome is drawn from
the usual mix, or, with the signal_accuracy fault knob set, is a success with that probability
and a failure otherwise.
"""

from __future__ import annotations

import random

import redis

from finance_demo.catalog import ALLOWED, INSTRUMENTS, MODELS, PRIORITIES, PROVIDER_SYMBOLS
from finance_demo.platform import keys
from finance_demo.platform.datastores import Connection, PostgresPool, RedisStore
from finance_demo.platform.faults import FaultSwitch
from finance_demo.platform.fields import choice, identifier, number
from finance_demo.platform.http import HttpError, Request, Response, Route

SEGMENTS = {instrument.symbol: instrument.segment for instrument in INSTRUMENTS}
# Outcomes of an executed order: about 4% rejected, like the reference data.
_ORDER_OUTCOMES = (("filled", 0.88), ("rejected", 0.04), ("canceled", 0.05), ("expired", 0.03))
_SIGNAL_OUTCOMES = (("success", 0.58), ("failure", 0.32), ("expired", 0.10))
# Median generation time per model (MODELS order), as in the seed.
# Median generation time per model (the seed's); a spread of 0.4 keeps the slowest model's P95
# near 6 s, clear of SignalGenerationSlow's 10 s.
_GENERATION_MEDIANS = dict(zip(MODELS, (0.4, 0.08, 1.5, 3.0), strict=True))
_GENERATION_SPREAD = 0.4
# Active signals kept per strategy before each new one closes an old one.
_ACTIVE_PER_STRATEGY = 20


def _pick(rng: random.Random, outcomes: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([name for name, _ in outcomes], [w for _, w in outcomes])[0]


class TradingService:
    """Handlers of the trading service."""

    def __init__(
        self,
        pool: PostgresPool,
        store: RedisStore,
        faults: FaultSwitch,
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self._store = store
        self._faults = faults
        self._rng = rng or random.Random()

    def routes(self) -> list[Route]:
        """The service's routes."""
        return [
            Route("POST", "/v1/signals", self.signal),
            Route("POST", "/v1/orders", self.order),
            Route("GET", "/v1/orders/{id}", self.get_order),
            Route("GET", "/v1/users/{id}/portfolios", self.user_portfolios),
        ]

    def signal(self, request: Request) -> Response:
        """Record a model's signal as active; past the active target, close a random old one."""
        strategy = choice(request.body, "strategy", ALLOWED[("signals", "strategy")])
        timeframe = choice(request.body, "timeframe", ALLOWED[("signals", "timeframe")])
        model = choice(request.body, "model", MODELS)
        symbol = choice(request.body, "symbol", tuple(SEGMENTS))
        direction = choice(request.body, "direction", ALLOWED[("signals", "direction")])
        confidence = number(request.body, "confidence", 0.0, 1.0)
        # The model ran upstream; this is how long it took, not time spent here.
        generation = self._rng.lognormvariate(0.0, _GENERATION_SPREAD) * _GENERATION_MEDIANS[model]
        key = keys.active_signals(strategy)
        with self._pool.transaction() as conn:
            row = conn.execute(
                "INSERT INTO signals (strategy, timeframe, model, symbol, direction, confidence,"
                " generation_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (strategy, timeframe, model, symbol, direction, confidence, generation),
            ).fetchone()
            assert row is not None
            signal_id = int(str(row[0]))

            def rotate(client: redis.Redis) -> object:
                full = int(client.scard(key)) >= _ACTIVE_PER_STRATEGY
                closed = client.spop(key) if full else None
                client.sadd(key, signal_id)
                return closed

            closed = self._store.run(rotate)
            if closed is not None and str(closed).isdigit():
                conn.execute(
                    "UPDATE signals SET status = 'closed', outcome = %s, closed_at = now()"
                    " WHERE id = %s AND status = 'active'",
                    (self._outcome(), int(str(closed))),
                )
        return Response(201, {"id": signal_id, "closed": closed})

    def _outcome(self) -> str:
        """A closing signal's outcome: the usual mix, or as the signal_accuracy knob says."""
        succeeds = self._faults.signal_succeeds()
        if succeeds is None:
            return _pick(self._rng, _SIGNAL_OUTCOMES)
        return "success" if succeeds else "failure"

    def order(self, request: Request) -> Response:
        """Queue a new order, then execute the oldest waiting order of the same priority."""
        portfolio_id = identifier(request.body, "portfolio_id")
        broker = choice(request.body, "broker", ALLOWED[("orders", "broker")])
        order_type = choice(request.body, "order_type", ALLOWED[("orders", "order_type")])
        side = choice(request.body, "side", ALLOWED[("orders", "side")])
        symbol = choice(request.body, "symbol", tuple(SEGMENTS))
        quantity = number(request.body, "quantity", 1e-8, 1e9)
        priority = choice(request.body, "priority", PRIORITIES)
        queue = keys.order_queue(priority)
        with self._pool.transaction() as conn:
            if conn.execute("SELECT 1 FROM portfolios WHERE id = %s", (portfolio_id,)).fetchone():
                row = conn.execute(
                    "INSERT INTO orders (portfolio_id, broker, segment, order_type, side, symbol,"
                    " quantity, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending')"
                    " RETURNING id",
                    (portfolio_id, broker, SEGMENTS[symbol], order_type, side, symbol, quantity),
                ).fetchone()
            else:
                raise HttpError(404, f"no portfolio {portfolio_id}")
            assert row is not None
            order_id = int(str(row[0]))
            oldest = self._store.run(lambda client: _push_pop(client, queue, order_id))
            executed = self._execute(conn, int(oldest)) if oldest is not None else None
        return Response(201, {"id": order_id, "status": "pending", "executed": executed})

    def _execute(self, conn: Connection, order_id: int) -> dict[str, object] | None:
        row = conn.execute(
            "SELECT portfolio_id, broker, segment, side, symbol, quantity, status FROM orders"
            " WHERE id = %s FOR UPDATE",
            (order_id,),
        ).fetchone()
        if row is None or row[6] not in ("pending", "open"):
            return None  # executed or canceled elsewhere meanwhile
        portfolio_id, broker, segment, side, symbol, quantity, _ = row
        status = _pick(self._rng, _ORDER_OUTCOMES)
        conn.execute("UPDATE orders SET status = %s WHERE id = %s", (status, order_id))
        if status == "filled":
            price = self._price(str(symbol))
            multiplier = next(i.multiplier for i in INSTRUMENTS if i.symbol == symbol)
            notional = round(float(str(quantity)) * price * multiplier, 2)
            conn.execute(
                "INSERT INTO trades (order_id, broker, segment, quantity, price, notional_usd)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (order_id, broker, segment, quantity, price, notional),
            )
            if side == "buy":
                conn.execute(
                    "INSERT INTO positions (portfolio_id, symbol, quantity, avg_price)"
                    " VALUES (%s, %s, %s, %s)",
                    (portfolio_id, symbol, quantity, price),
                )
            else:
                conn.execute(
                    "UPDATE positions SET status = 'closed', closed_at = now() WHERE id ="
                    " (SELECT id FROM positions WHERE portfolio_id = %s AND symbol = %s"
                    " AND status = 'open' ORDER BY id LIMIT 1)",
                    (portfolio_id, symbol),
                )
        return {"id": order_id, "status": status}

    def _price(self, symbol: str) -> float:
        """The newest tick of the symbol from the market-data feed, else its reference price."""
        provider = next((p for p, s in PROVIDER_SYMBOLS.items() if symbol in s), None)
        if provider is not None:
            tick = self._store.run(lambda client: client.hget(keys.ticks(provider), symbol))
            if isinstance(tick, str) and "|" in tick:
                return float(tick.split("|", 1)[0])
        return next(i.price for i in INSTRUMENTS if i.symbol == symbol)

    def get_order(self, request: Request) -> Response:
        """One order."""
        order_id = identifier(request.params, "id")
        with self._pool.transaction() as conn:
            row = conn.execute(
                "SELECT status, symbol, side, quantity FROM orders WHERE id = %s", (order_id,)
            ).fetchone()
        if row is None:
            raise HttpError(404, f"no order {order_id}")
        body = {"id": order_id, "status": row[0], "symbol": row[1], "side": row[2]}
        return Response(200, {**body, "quantity": str(row[3])})

    def user_portfolios(self, request: Request) -> Response:
        """A user's portfolios, their open positions by symbol and their orders by status."""
        user_id = identifier(request.params, "id")
        with self._pool.transaction() as conn:
            portfolios = conn.execute(
                "SELECT id, account_type FROM portfolios WHERE user_id = %s ORDER BY id",
                (user_id,),
            ).fetchall()
            positions = conn.execute(
                "SELECT x.symbol, sum(x.quantity) FROM positions AS x"
                " JOIN portfolios AS p ON p.id = x.portfolio_id"
                " WHERE p.user_id = %s AND x.status = 'open' GROUP BY x.symbol ORDER BY x.symbol",
                (user_id,),
            ).fetchall()
            orders = conn.execute(
                "SELECT o.status, count(*) FROM orders AS o"
                " JOIN portfolios AS p ON p.id = o.portfolio_id"
                " WHERE p.user_id = %s GROUP BY o.status ORDER BY o.status",
                (user_id,),
            ).fetchall()
        body = {
            "user_id": user_id,
            "portfolios": [{"id": pid, "account_type": kind} for pid, kind in portfolios],
            "open_positions": [{"symbol": sym, "quantity": str(qty)} for sym, qty in positions],
            "orders": {str(status): int(str(count)) for status, count in orders},
        }
        return Response(200, body)


def _push_pop(client: redis.Redis, queue: str, order_id: int) -> int | None:
    """Append the new order and take the oldest one, atomically (MULTI/EXEC)."""
    pipe = client.pipeline(transaction=True)
    pipe.rpush(queue, order_id)
    pipe.lpop(queue)
    _, oldest = pipe.execute()
    return int(oldest) if oldest is not None and str(oldest).isdigit() else None
