"""The payment service: charges a subscription (pending, then succeeded or failed) and refunds.

A charge is two transactions, as at a real processor: the pending row is committed first, the
processor is called, and the final status is written by a second transaction (the schema's
trigger stamps final_xid then, which is what the revenue exporter counts).

With the payment provider failing (the provider_failing fault knob) the processor fails every
charge with a processing error: the payment is made final as failed, as such an error leaves it,
and the charge is answered 402 with the provider's error, like a decline (Stripe reports its
processing_error as a 402 card error too). So PaymentSuccessRatioLow, which reads the payments
made final, sees it, and the payment service's availability SLO does not: a 5xx for 70% of its
requests (charges are most of them) over a drill's 20 minutes would spend most of a month's
budget, and page for that instead.
"""

from __future__ import annotations

import logging
import random
import time
from decimal import Decimal

from finance_demo.catalog import ALLOWED
from finance_demo.platform.datastores import PostgresPool
from finance_demo.platform.faults import FaultSwitch
from finance_demo.platform.fields import choice, identifier
from finance_demo.platform.http import HttpError, Request, Response, Route

logger = logging.getLogger(__name__)

# Stripe's test token for a card the issuer declines; any other token is approved.
DECLINED_CARD = "tok_chargeDeclined"
# The processor's answer time: log-normal, median 40 ms, capped (a timeout in real life).
_PROCESSOR_MEDIAN_SECONDS = 0.04
_PROCESSOR_MAX_SECONDS = 0.4
PROVIDER_ERROR = "payment provider unavailable"


class PaymentService:
    """Handlers of the payment service."""

    def __init__(
        self, pool: PostgresPool, faults: FaultSwitch, rng: random.Random | None = None
    ) -> None:
        self._pool = pool
        self._faults = faults
        self._rng = rng or random.Random()

    def routes(self) -> list[Route]:
        """The service's routes."""
        return [
            Route("POST", "/v1/payments", self.charge),
            Route("GET", "/v1/payments/{id}", self.get),
            Route("GET", "/v1/users/{id}/payments", self.summary),
            Route("POST", "/v1/payments/{id}/refunds", self.refund),
        ]

    def charge(self, request: Request) -> Response:
        """Charge a live subscription its price: 201 if approved, 402 if declined or if the
        provider failed it."""
        subscription_id = identifier(request.body, "subscription_id")
        method = choice(request.body, "method", ALLOWED[("payments", "method")])
        source = choice(request.body, "source", ALLOWED[("payments", "source")])
        token = request.body.get("card_token")
        with self._pool.transaction() as conn:
            row = conn.execute(
                "SELECT user_id, plan, amount, currency, status FROM subscriptions WHERE id = %s",
                (subscription_id,),
            ).fetchone()
            if row is None:
                raise HttpError(404, f"no subscription {subscription_id}")
            user_id, plan, amount, currency, status = row
            if status == "canceled":
                raise HttpError(409, f"subscription {subscription_id} is canceled")
            inserted = conn.execute(
                "INSERT INTO payments (user_id, subscription_id, amount, currency, plan, method,"
                " source, status) VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending') RETURNING id",
                (user_id, subscription_id, amount, currency, plan, method, source),
            ).fetchone()
        assert inserted is not None
        payment_id = inserted[0]
        delay = self._rng.lognormvariate(0.0, 0.5) * _PROCESSOR_MEDIAN_SECONDS
        time.sleep(min(delay, _PROCESSOR_MAX_SECONDS))
        provider_failed = self._faults.current.provider_failing
        final = "failed" if provider_failed or token == DECLINED_CARD else "succeeded"
        with self._pool.transaction() as conn:
            conn.execute("UPDATE payments SET status = %s WHERE id = %s", (final, payment_id))
        body = _payment(payment_id, final, amount, currency)
        if provider_failed:
            logger.warning("payment provider error", extra={"payment.id": payment_id})
            return Response(402, {**body, "error": PROVIDER_ERROR})
        return Response(201 if final == "succeeded" else 402, body)

    def get(self, request: Request) -> Response:
        """One payment."""
        payment_id = identifier(request.params, "id")
        with self._pool.transaction() as conn:
            row = conn.execute(
                "SELECT status, amount, currency FROM payments WHERE id = %s", (payment_id,)
            ).fetchone()
        if row is None:
            raise HttpError(404, f"no payment {payment_id}")
        return Response(200, _payment(payment_id, *row))

    def summary(self, request: Request) -> Response:
        """A user's payments: counts by status, amounts paid by currency, and the newest one."""
        user_id = identifier(request.params, "id")
        with self._pool.transaction() as conn:
            groups = conn.execute(
                "SELECT status, currency, count(*), sum(amount) FROM payments WHERE user_id = %s"
                " GROUP BY status, currency ORDER BY status, currency",
                (user_id,),
            ).fetchall()
            latest = conn.execute(
                "SELECT id, status, amount, currency FROM payments WHERE user_id = %s"
                " ORDER BY id DESC LIMIT 1",
                (user_id,),
            ).fetchone()
        counts: dict[str, int] = {}
        paid: dict[str, str] = {}
        for status, currency, count, amount in groups:
            counts[str(status)] = counts.get(str(status), 0) + int(str(count))
            if status == "succeeded":
                paid[str(currency)] = str(amount)
        newest = _payment(*latest) if latest is not None else None
        body = {"user_id": user_id, "by_status": counts, "paid": paid, "latest": newest}
        return Response(200, body)

    def refund(self, request: Request) -> Response:
        """Refund what is left of a succeeded payment: a new refunds row (201)."""
        payment_id = identifier(request.params, "id")
        with self._pool.transaction() as conn:
            row = conn.execute(
                "SELECT status, amount FROM payments WHERE id = %s FOR UPDATE", (payment_id,)
            ).fetchone()
            if row is None:
                raise HttpError(404, f"no payment {payment_id}")
            status, amount = row
            if status != "succeeded":
                raise HttpError(409, f"payment {payment_id} is {status}, not succeeded")
            refunded = conn.execute(
                "SELECT coalesce(sum(amount), 0) FROM refunds WHERE payment_id = %s",
                (payment_id,),
            ).fetchone()
            left = Decimal(str(amount)) - Decimal(str(refunded[0] if refunded else 0))
            if left <= 0:
                raise HttpError(409, f"payment {payment_id} is refunded already")
            created = conn.execute(
                "INSERT INTO refunds (payment_id, amount) VALUES (%s, %s) RETURNING id",
                (payment_id, left),
            ).fetchone()
        assert created is not None
        return Response(201, {"id": created[0], "payment_id": payment_id, "amount": str(left)})


def _payment(
    payment_id: object, status: object, amount: object, currency: object
) -> dict[str, object]:
    """A payment as the routes answer it: the amount as a decimal string."""
    return {"id": payment_id, "status": status, "amount": str(amount), "currency": currency}
