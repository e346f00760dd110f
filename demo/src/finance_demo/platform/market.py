"""The market-data service: a feed that writes every provider's ticks to Redis, and quotes.

The feed is what keeps finance_market_data_age_seconds low: each second it writes, per provider
and in one round trip, the newest tick time (md:last_tick:<provider>) and each symbol's
"price|timestamp" (md:ticks:<provider>). Prices wander a little around the catalog's level.
With the feed stalled (the feed_stalled fault knob) it writes nothing: quotes keep their last
tick and every provider's age grows, as when a real feed handler hangs.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from finance_demo.catalog import INSTRUMENTS, PROVIDER_SYMBOLS, price_at
from finance_demo.platform import keys
from finance_demo.platform.datastores import DatastoreUnavailableError, RedisStore
from finance_demo.platform.faults import FaultSwitch
from finance_demo.platform.http import HttpError, Request, Response, Route
from finance_demo.platform.logs import current_service

logger = logging.getLogger(__name__)

FEED_INTERVAL_SECONDS = 1.0
_INDEX = {instrument.symbol: n + 1 for n, instrument in enumerate(INSTRUMENTS)}
# Largest move of a price away from its reference level (a clamped random walk).
_MAX_DRIFT = 0.03
_STEP = 0.0008


class MarketDataService:
    """Handlers of the market-data service, and its feed."""

    def __init__(
        self, store: RedisStore, faults: FaultSwitch, rng: random.Random | None = None
    ) -> None:
        self._store = store
        self._faults = faults
        self._rng = rng or random.Random()
        self._drift = dict.fromkeys(_INDEX, 0.0)

    def routes(self) -> list[Route]:
        """The service's routes."""
        return [Route("GET", "/v1/quotes/{symbol}", self.quote)]

    def quote(self, request: Request) -> Response:
        """The newest tick of a symbol (URL-encoded in the path: EUR%2FUSD)."""
        symbol = request.params["symbol"]
        provider = next((p for p, s in PROVIDER_SYMBOLS.items() if symbol in s), None)
        if provider is None:
            raise HttpError(404, f"no quotes for {symbol!r}")
        tick = self._store.run(lambda client: client.hget(keys.ticks(provider), symbol))
        if not isinstance(tick, str) or "|" not in tick:
            raise HttpError(404, f"no tick yet for {symbol!r}")
        price, stamp = tick.split("|", 1)
        body = {"symbol": symbol, "provider": provider, "price": price, "timestamp": stamp}
        return Response(200, body)

    def publish(self, now: float) -> int:
        """Write one tick of every provider's symbols at `now`; return the ticks written."""
        pipe = self._store.client.pipeline(transaction=False)
        written = 0
        for provider, symbols in PROVIDER_SYMBOLS.items():
            fields: dict[str, str] = {}
            for symbol in symbols:
                fields[symbol] = f"{self._price(symbol):.{self._decimals(symbol)}f}|{now:.3f}"
            pipe.hset(keys.ticks(provider), mapping=fields)  # type: ignore[arg-type]
            pipe.set(keys.last_tick(provider), f"{now:.3f}")
            written += len(fields)
        self._store.run(lambda _client: pipe.execute())
        return written

    def _price(self, symbol: str) -> float:
        step = self._rng.gauss(0.0, _STEP)
        self._drift[symbol] = max(-_MAX_DRIFT, min(_MAX_DRIFT, self._drift[symbol] + step))
        return price_at(_INDEX[symbol], 0.0) * (1 + self._drift[symbol])

    @staticmethod
    def _decimals(symbol: str) -> int:
        return 5 if INSTRUMENTS[_INDEX[symbol] - 1].segment == "forex" else 2

    def run_feed(self, stop: threading.Event) -> None:
        """Publish ticks every FEED_INTERVAL_SECONDS until `stop`, none while the feed is
        stalled; a Redis outage is waited out."""
        current_service.set("market-data")
        while not stop.is_set():
            try:
                if not self._faults.current.feed_stalled:
                    self.publish(time.time())
            except DatastoreUnavailableError:
                pass  # logged once by the store; the next tick retries
            except Exception:
                logger.exception("market-data feed failed")
            stop.wait(FEED_INTERVAL_SECONDS)
