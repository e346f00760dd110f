"""What the demo load sends next: a deterministic mix of the platform's requests (no I/O).

The same seed gives the same sequence of choices. Requests that need an earlier result (a
payment needs a subscription, an order a portfolio) fall back to a sign-up until one exists.
The 4xx in the mix are realistic caller errors (declined cards, mistyped passwords, unknown ids);
the plan itself causes no 5xx, so in steady state every SLO keeps its whole error budget.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from finance_demo.catalog import ALLOWED, INSTRUMENTS, MODELS, PRIORITIES
from finance_demo.platform.overview import OVERVIEW_ROUTE
from finance_demo.platform.payment import DECLINED_CARD
from finance_demo.platform.users import demo_password

# Relative weight of each kind of request (per 10,000). Churn is rare on purpose: at the default
# 4 requests a second it is about 35 users a day, far below ChurnRateHigh's 1% of active users,
# so the demo never raises a business alert it did not mean to.
MIX: dict[str, int] = {
    "quote": 1999,
    "order": 1800,
    "get_order": 800,
    "signal": 1200,
    "payment": 1400,
    "get_payment": 400,
    "refund": 100,
    "signup": 600,
    "login": 1200,
    "churn": 1,
    "unknown_order": 400,
    # The gateway's account overview reads all four services: one trace through all five.
    "overview": 100,
}
DECLINE_RATIO = 0.04
WRONG_PASSWORD_RATIO = 0.03
_POOL_SIZE = 500
_BROKERS = {
    "equity": ("alpaca", "interactive_brokers"),
    "crypto": ("binance", "alpaca"),
    "forex": ("oanda",),
    "options": ("interactive_brokers",),
}
_QUANTITY = {"equity": (1, 50), "crypto": (0.01, 2), "forex": (1000, 50000), "options": (1, 10)}
# Far above any id the demo will reach: a lookup that is a 404 by construction.
_UNKNOWN_ID = 9_000_000_000_000


@dataclass(frozen=True)
class Planned:
    """One request: method, route template (for the summary), path and JSON body."""

    kind: str
    method: str
    route: str
    path: str
    body: dict[str, object] | None = None


@dataclass
class Customer:
    """A user the load signed up, with what it owns."""

    user_id: int
    email: str
    subscription_id: int | None
    portfolio_id: int


@dataclass
class LoadPlan:
    """The next request from the mix and what earlier answers made possible."""

    seed: int = 42
    customers: list[Customer] = field(default_factory=list)
    payments: deque[int] = field(default_factory=lambda: deque(maxlen=200))
    orders: deque[int] = field(default_factory=lambda: deque(maxlen=200))

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def next(self) -> Planned:
        """The next request of the mix."""
        kind = self._rng.choices(list(MIX), list(MIX.values()))[0]
        paying = [c for c in self.customers if c.subscription_id is not None]
        if kind in ("order", "login", "churn", "overview") and not self.customers:
            kind = "signup"
        if kind == "payment" and not paying:
            kind = "signup"
        if kind == "get_order" and not self.orders:
            kind = "quote"
        if kind in ("get_payment", "refund") and not self.payments:
            kind = "quote"
        builders: dict[str, Callable[[], Planned]] = {
            "quote": self._quote,
            "order": self._order,
            "get_order": self._get_order,
            "unknown_order": self._unknown_order,
            "signal": self._signal,
            "payment": self._payment,
            "get_payment": self._get_payment,
            "refund": self._refund,
            "signup": self._signup,
            "login": self._login,
            "churn": self._churn,
            "overview": self._overview,
        }
        return builders[kind]()

    def learn(self, planned: Planned, status: int, body: dict[str, object]) -> None:
        """Remember the ids an answer created, for later requests."""
        if planned.kind == "signup" and status == 201:
            subscription = body.get("subscription_id")
            customer = Customer(
                user_id=int(str(body["user_id"])),
                email=str(body["email"]),
                subscription_id=int(str(subscription)) if subscription is not None else None,
                portfolio_id=int(str(body["portfolio_id"])),
            )
            if len(self.customers) >= _POOL_SIZE:
                self.customers.pop(0)
            self.customers.append(customer)
        elif planned.kind == "payment" and status == 201:
            self.payments.append(int(str(body["id"])))
        elif planned.kind == "order" and status == 201:
            self.orders.append(int(str(body["id"])))

    def _pick(self, values: tuple[str, ...], weights: tuple[float, ...] | None = None) -> str:
        return self._rng.choices(values, weights)[0]

    def _quote(self) -> Planned:
        symbol = self._pick(tuple(i.symbol for i in INSTRUMENTS if i.segment != "options"))
        path = f"/v1/quotes/{quote(symbol, safe='')}"
        return Planned("quote", "GET", "/v1/quotes/{symbol}", path)

    def _order(self) -> Planned:
        instrument = self._rng.choice(INSTRUMENTS)
        low, high = _QUANTITY[instrument.segment]
        body: dict[str, object] = {
            "portfolio_id": self._rng.choice(self.customers).portfolio_id,
            "broker": self._pick(_BROKERS[instrument.segment]),
            "order_type": self._pick(ALLOWED[("orders", "order_type")], (60, 30, 5, 5)),
            "side": self._pick(ALLOWED[("orders", "side")], (55, 45)),
            "symbol": instrument.symbol,
            "quantity": round(self._rng.uniform(low, high), 2),
            "priority": self._pick(PRIORITIES, (20, 50, 30)),
        }
        return Planned("order", "POST", "/v1/orders", "/v1/orders", body)

    def _get_order(self) -> Planned:
        order_id = self._rng.choice(self.orders)
        return Planned("get_order", "GET", "/v1/orders/{id}", f"/v1/orders/{order_id}")

    def _unknown_order(self) -> Planned:
        return Planned("unknown_order", "GET", "/v1/orders/{id}", f"/v1/orders/{_UNKNOWN_ID}")

    def _signal(self) -> Planned:
        body: dict[str, object] = {
            "strategy": self._pick(ALLOWED[("signals", "strategy")]),
            "timeframe": self._pick(ALLOWED[("signals", "timeframe")], (10, 25, 35, 20, 10)),
            "model": self._pick(MODELS),
            "symbol": self._pick(tuple(i.symbol for i in INSTRUMENTS if i.segment != "options")),
            "direction": self._pick(ALLOWED[("signals", "direction")]),
            "confidence": round(self._rng.uniform(0.5, 0.95), 3),
        }
        return Planned("signal", "POST", "/v1/signals", "/v1/signals", body)

    def _payment(self) -> Planned:
        customer = self._rng.choice([c for c in self.customers if c.subscription_id is not None])
        declined = self._rng.random() < DECLINE_RATIO
        body: dict[str, object] = {
            "subscription_id": customer.subscription_id,
            "method": self._pick(ALLOWED[("payments", "method")], (70, 10, 15, 5)),
            "source": self._pick(ALLOWED[("payments", "source")], (50, 35, 15)),
            "card_token": DECLINED_CARD if declined else "tok_visa",
        }
        return Planned("payment", "POST", "/v1/payments", "/v1/payments", body)

    def _get_payment(self) -> Planned:
        payment_id = self._rng.choice(self.payments)
        return Planned("get_payment", "GET", "/v1/payments/{id}", f"/v1/payments/{payment_id}")

    def _refund(self) -> Planned:
        payment_id = self._rng.choice(self.payments)
        path = f"/v1/payments/{payment_id}/refunds"
        return Planned("refund", "POST", "/v1/payments/{id}/refunds", path, {})

    def _signup(self) -> Planned:
        body: dict[str, object] = {
            "tier": self._pick(ALLOWED[("users", "tier")], (40, 30, 22, 8)),
            "billing_period": self._pick(ALLOWED[("subscriptions", "billing_period")], (75, 25)),
            "currency": self._pick(ALLOWED[("subscriptions", "currency")], (68, 20, 12)),
            "account_type": self._pick(ALLOWED[("portfolios", "account_type")], (60, 20, 15, 5)),
        }
        return Planned("signup", "POST", "/v1/users", "/v1/users", body)

    def _login(self) -> Planned:
        customer = self._rng.choice(self.customers)
        secret = demo_password(customer.email)
        if self._rng.random() < WRONG_PASSWORD_RATIO:
            secret = secret[::-1]
        body: dict[str, object] = {"email": customer.email, "password": secret}
        return Planned("login", "POST", "/v1/sessions", "/v1/sessions", body)

    def _churn(self) -> Planned:
        customer = self.customers.pop(self._rng.randrange(len(self.customers)))
        path = f"/v1/users/{customer.user_id}/churn"
        return Planned("churn", "POST", "/v1/users/{id}/churn", path, {})

    def _overview(self) -> Planned:
        customer = self._rng.choice(self.customers)
        path = f"/v1/accounts/{customer.user_id}/overview"
        return Planned("overview", "GET", OVERVIEW_ROUTE, path)
