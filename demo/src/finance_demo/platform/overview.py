"""The account overview: one gateway request that reads all four services (backend for frontend).

GET /v1/accounts/{id}/overview asks user-management for the user (a 404 there is a 404 here),
then payment for their payments, trading for their portfolios, and market-data for quotes of
their open positions' symbols, topped up from a watchlist. Each read is its own CLIENT span, so
one overview is one trace through all five services. The parts are read one after the other:
the reads are a few milliseconds each, and a sequence keeps the trace easy to read.

A part that fails fails the overview with its status (503 when a datastore is down, 502 or 504
when a service does not answer in time), so the gateway's SLO sees what its users see. A symbol
without quotes (options, or no tick yet) is left out, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from finance_demo.platform.fields import identifier
from finance_demo.platform.http import Request, Response

OVERVIEW_ROUTE = "/v1/accounts/{id}/overview"
# The upstream reads of an overview: (method, route template, service).
USER = ("GET", "/v1/users/{id}", "user-management")
PAYMENTS = ("GET", "/v1/users/{id}/payments", "payment")
PORTFOLIOS = ("GET", "/v1/users/{id}/portfolios", "trading")
QUOTE = ("GET", "/v1/quotes/{symbol}", "market-data")
PARTS = (USER, PAYMENTS, PORTFOLIOS, QUOTE)
# Quotes per overview: the open positions' symbols first, then these.
WATCHLIST = ("AAPL", "BTC-USD", "EUR/USD")
QUOTES = 3


class Fetch(Protocol):
    """Calls one upstream route (the gateway's CLIENT side)."""

    def __call__(
        self, method: str, template: str, upstream: str, params: Mapping[str, str]
    ) -> Response:
        """The upstream's answer, or 502/504 if it gave none in time."""


class AccountOverview:
    """The handler of OVERVIEW_ROUTE."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch

    def handle(self, request: Request) -> Response:
        """The user, their payments, portfolios and quotes in one answer."""
        params = {"id": str(identifier(request.params, "id"))}
        parts: dict[str, Mapping[str, object]] = {}
        for name, part in (("user", USER), ("payments", PAYMENTS), ("portfolios", PORTFOLIOS)):
            answer = self._fetch(*part, params)
            if part is USER and answer.status == 404:
                return Response(404, {"error": f"no account {params['id']}"})
            if answer.status != 200:
                return _failed(part[2], answer)
            parts[name] = answer.body
        quotes: list[Mapping[str, object]] = []
        for symbol in _symbols(parts["portfolios"]):
            answer = self._fetch(*QUOTE, {"symbol": symbol})
            if answer.status == 200:
                quotes.append(answer.body)
            elif answer.status != 404:
                return _failed(QUOTE[2], answer)
        return Response(200, {"account_id": int(params["id"]), **parts, "quotes": quotes})


def _symbols(portfolios: Mapping[str, object]) -> list[str]:
    positions = portfolios.get("open_positions")
    rows = positions if isinstance(positions, list) else []
    held = [str(row["symbol"]) for row in rows if isinstance(row, dict) and "symbol" in row]
    return list(dict.fromkeys([*held, *WATCHLIST]))[:QUOTES]


def _failed(upstream: str, answer: Response) -> Response:
    # A 4xx from a part is not the caller's fault here: the gateway asked for something valid.
    status = answer.status if answer.status >= 500 else 502
    reason = answer.body.get("error", f"status {answer.status}")
    return Response(status, {"error": f"{upstream}: {reason}"})
