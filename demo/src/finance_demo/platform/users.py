"""The user-management service: sign-ups (user, subscription, portfolio), logins and churn.

The reference schema stores no credentials, so a demo user's password is derived from the
email (demo_password); a login still does the work of a real one, a key-derivation and a
constant-time comparison, and counts auth_attempts_total{result}.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from datetime import datetime
from decimal import Decimal

from finance_demo.catalog import ALLOWED
from finance_demo.platform.datastores import PostgresPool
from finance_demo.platform.fields import choice, identifier, text
from finance_demo.platform.http import HttpError, Request, Response, Route
from finance_demo.platform.metrics import ServiceMetrics

# Monthly list prices, as in the seed; yearly billing is ten months' price for twelve.
MONTHLY_PRICES = {"basic": Decimal("9.99"), "pro": Decimal("49.99"), "enterprise": Decimal("499")}
_KDF_ITERATIONS = 2000

logger = logging.getLogger(__name__)


def demo_password(email: str) -> str:
    """The demo credential of `email` (the load generator logs in with it)."""
    return hashlib.sha256(f"finance-demo:{email}".encode()).hexdigest()[:20]


def _digest(email: str, password: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), email.encode(), _KDF_ITERATIONS)


class UserService:
    """Handlers of the user-management service."""

    def __init__(self, pool: PostgresPool, metrics: ServiceMetrics) -> None:
        self._pool = pool
        self._metrics = metrics

    def routes(self) -> list[Route]:
        """The service's routes."""
        return [
            Route("POST", "/v1/users", self.sign_up),
            Route("GET", "/v1/users/{id}", self.get),
            Route("POST", "/v1/users/{id}/churn", self.churn),
            Route("POST", "/v1/sessions", self.login),
        ]

    def sign_up(self, request: Request) -> Response:
        """A new user; a paying tier also gets a subscription; everyone gets a portfolio."""
        tier = choice(request.body, "tier", ALLOWED[("users", "tier")])
        period = choice(
            request.body, "billing_period", ALLOWED[("subscriptions", "billing_period")]
        )
        currency = choice(request.body, "currency", ALLOWED[("subscriptions", "currency")])
        account = choice(request.body, "account_type", ALLOWED[("portfolios", "account_type")])
        email = f"demo-{uuid.uuid4().hex[:16]}@example.com"
        subscription_id = None
        with self._pool.transaction() as conn:
            user = conn.execute(
                "INSERT INTO users (email, tier) VALUES (%s, %s) RETURNING id", (email, tier)
            ).fetchone()
            assert user is not None
            if tier != "free":
                monthly = MONTHLY_PRICES[tier]
                amount = monthly * 10 if period == "yearly" else monthly
                row = conn.execute(
                    "INSERT INTO subscriptions (user_id, plan, billing_period, amount, currency,"
                    " status) VALUES (%s, %s, %s, %s, %s, 'active') RETURNING id",
                    (user[0], tier, period, amount, currency),
                ).fetchone()
                subscription_id = row[0] if row else None
            portfolio = conn.execute(
                "INSERT INTO portfolios (user_id, account_type) VALUES (%s, %s) RETURNING id",
                (user[0], account),
            ).fetchone()
        assert portfolio is not None
        body = {
            "user_id": user[0],
            "email": email,
            "subscription_id": subscription_id,
            "portfolio_id": portfolio[0],
        }
        return Response(201, body)

    def get(self, request: Request) -> Response:
        """One user's tier and status and their newest live subscription (no email: PII)."""
        user_id = identifier(request.params, "id")
        with self._pool.transaction() as conn:
            row = conn.execute(
                "SELECT u.tier, u.status, u.created_at, s.id, s.plan, s.billing_period, s.status"
                " FROM users AS u LEFT JOIN LATERAL (SELECT id, plan, billing_period, status"
                " FROM subscriptions WHERE user_id = u.id AND status <> 'canceled'"
                " ORDER BY id DESC LIMIT 1) AS s ON true WHERE u.id = %s",
                (user_id,),
            ).fetchone()
        if row is None:
            raise HttpError(404, f"no user {user_id}")
        tier, status, created_at, subscription_id, plan, period, state = row
        subscription = (
            {"id": subscription_id, "plan": plan, "billing_period": period, "status": state}
            if subscription_id is not None
            else None
        )
        body = {"id": user_id, "tier": tier, "status": status, "subscription": subscription}
        return Response(200, {**body, "created_at": _iso(created_at)})

    def login(self, request: Request) -> Response:
        """201 with a session token for the right password, else 401; both are counted."""
        email = text(request.body, "email")
        offered = text(request.body, "password", max_length=100)
        with self._pool.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM users WHERE email = %s AND status = 'active'", (email,)
            ).fetchone()
            expected = _digest(email, demo_password(email))
            # Derive the key even for an unknown email: the answer time tells nothing.
            ok = hmac.compare_digest(_digest(email, offered), expected) and row is not None
            if ok and row is not None:
                conn.execute("UPDATE users SET last_active_at = now() WHERE id = %s", (row[0],))
        # Counted after the commit: an attempt the database could not decide is not an attempt.
        self._metrics.login(ok)
        # The ECS authentication event that Logstash routes to ai-finance-security (no email:
        # it is personal data; the user id when the email is known).
        logger.log(
            logging.INFO if ok else logging.WARNING,
            "login succeeded" if ok else "login failed",
            extra={
                "event.category": ["authentication"],
                "event.action": "user-login",
                "event.outcome": "success" if ok else "failure",
                **({"user.id": str(row[0])} if row is not None else {}),
            },
        )
        if not ok:
            raise HttpError(401, "wrong email or password")
        return Response(201, {"token": secrets.token_urlsafe(24)})

    def churn(self, request: Request) -> Response:
        """The user leaves: status churned, live subscriptions canceled."""
        user_id = identifier(request.params, "id")
        with self._pool.transaction() as conn:
            row = conn.execute(
                "UPDATE users SET status = 'churned', churned_at = now()"
                " WHERE id = %s AND status = 'active' RETURNING id",
                (user_id,),
            ).fetchone()
            if row is None:
                raise HttpError(404, f"no active user {user_id}")
            canceled = conn.execute(
                "UPDATE subscriptions SET status = 'canceled', canceled_at = now()"
                " WHERE user_id = %s AND status <> 'canceled'",
                (user_id,),
            ).rowcount
        return Response(200, {"user_id": user_id, "subscriptions_canceled": canceled})


def _iso(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
