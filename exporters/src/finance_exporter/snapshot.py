"""The served Snapshot and the single-flight Refresher that replaces it."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from finance_exporter.aggregate import Totals
from finance_exporter.spec import QuerySpec
from finance_exporter.values import Key, Values


class Clock(Protocol):
    """Wall-clock time for timestamps and ages, monotonic time for deadlines."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()


@dataclass(frozen=True)
class QueryState:
    """Everything known about one query after the latest refresh."""

    spec: QuerySpec
    values: Mapping[Key, Values] = field(default_factory=dict)
    loaded_at: float | None = None
    last_success: bool = False
    duration_seconds: float = 0.0
    runs_total: int = 0
    errors_total: Mapping[str, int] = field(default_factory=dict)
    skipped_total: Mapping[str, int] = field(default_factory=dict)
    totals: Totals | None = None
    database: str = ""
    watermark_since: float | None = None

    def failed(self, reason: str, duration_seconds: float = 0.0) -> QueryState:
        """This state after a failed run: values kept (until max_age), error counted."""
        errors = dict(self.errors_total)
        errors[reason] = errors.get(reason, 0) + 1
        return replace(
            self,
            last_success=False,
            duration_seconds=duration_seconds,
            runs_total=self.runs_total + 1,
            errors_total=errors,
        )

    def is_stale(self, now: float) -> bool:
        """True if the values are older than the query's max_age and must not be served."""
        return self.loaded_at is None or now - self.loaded_at > self.spec.max_age_seconds


@dataclass(frozen=True)
class Snapshot:
    """Immutable result of a refresh, replaced whole by the next one."""

    taken_at: float
    queries: Mapping[str, QueryState]
    source_up: Mapping[str, bool]

    @classmethod
    def empty(cls, queries: Mapping[str, QueryState]) -> Snapshot:
        """A snapshot that is never fresh, holding the initial query states."""
        sources = {state.spec.source for state in queries.values()}
        return cls(taken_at=float("-inf"), queries=queries, source_up=dict.fromkeys(sources, False))


class Loader(Protocol):
    """Builds the next snapshot from the previous one, finishing by `deadline` (monotonic)."""

    def load(self, previous: Snapshot, deadline: float) -> Snapshot:
        """Run the queries and return the new snapshot."""


class Refresher:
    """Serves snapshots; at most one refresh runs at a time and concurrent scrapes share it."""

    def __init__(
        self, loader: Loader, initial: Snapshot, min_interval_seconds: float, clock: Clock
    ):
        self._loader = loader
        self._current = initial
        self._min_interval_seconds = min_interval_seconds
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, deadline: float) -> Snapshot:
        """Return a snapshot no older than min_interval, or the newest one by `deadline`."""
        if self._is_fresh(self._current):
            return self._current
        # Followers wait here for the leader's refresh instead of starting their own.
        if not self._lock.acquire(timeout=max(deadline - self._clock.monotonic(), 0.0)):
            return self._current
        try:
            if not self._is_fresh(self._current):  # the leader may have refreshed while we waited
                self._current = self._loader.load(self._current, deadline)
            return self._current
        finally:
            self._lock.release()

    def _is_fresh(self, snapshot: Snapshot) -> bool:
        return self._clock.monotonic() - snapshot.taken_at < self._min_interval_seconds
