"""The served Snapshot and the single-flight Refresher that replaces it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
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
    # Set while the query's first fold runs in the background (backfill.py): the share of its
    # history folded so far, 0..1. Its values stay empty until the fold is complete.
    backfill_ratio: float | None = None
    backfill_failing: bool = False  # the fold's latest attempt failed; it is retried

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
    """Serves snapshots; one refresh at a time, and once there is a snapshot no scrape waits.

    The first scrape that finds the snapshot older than min_interval refreshes it, within its own
    deadline. A scrape that arrives meanwhile is served the previous snapshot at once: waiting
    would buy it a value at most one refresh newer, at the price of the refresh's whole latency
    (and, with many scrapers, of a thread per waiter). Only before the first refresh, when there
    is nothing to serve, do scrapes wait for it, each within its own deadline.

    The served snapshot is one immutable object replaced by a single reference assignment, so
    a scrape reads it without a lock. The lock below is taken without blocking, by the refreshing
    scrape only: no scrape ever waits on it, and no waiting scrape can starve a refresh of it.
    """

    def __init__(
        self,
        loader: Loader,
        initial: Snapshot,
        min_interval_seconds: float,
        clock: Clock,
        on_published: Callable[[Snapshot, Snapshot], None] | None = None,
    ):
        self._loader = loader
        self._current = initial
        self._min_interval_seconds = min_interval_seconds
        self._clock = clock
        self._on_published = on_published
        self._refreshing = threading.Lock()
        self._loaded = threading.Event()
        self._expired = False
        if initial.taken_at != float("-inf"):
            self._loaded.set()

    @property
    def current(self) -> Snapshot:
        """The snapshot served now, without refreshing it."""
        return self._current

    def expire(self) -> None:
        """Make the next scrape refresh however fresh the snapshot is: there is something new to
        serve (a first fold completed in the background), not worth a whole min_interval's wait."""
        self._expired = True

    def get(self, deadline: float) -> Snapshot:
        """Return a snapshot no older than min_interval, else the newest one without waiting.

        The scrape that refreshes waits for its own refresh, until `deadline` (monotonic).
        """
        if self._is_fresh(self._current):
            return self._current
        if self._refreshing.acquire(blocking=False):
            try:
                return self._refresh(deadline)
            finally:
                self._refreshing.release()
        if not self._loaded.is_set():  # nothing to serve yet: wait for the first refresh
            self._loaded.wait(timeout=max(deadline - self._clock.monotonic(), 0.0))
        return self._current

    def _refresh(self, deadline: float) -> Snapshot:
        previous = self._current
        if self._is_fresh(previous):  # another scrape refreshed between our check and the lock
            return previous
        self._expired = False  # an expire() during this load makes the next scrape refresh again
        snapshot = self._loader.load(previous, deadline)
        self._current = snapshot
        self._loaded.set()
        # After the swap: scrapes already serve the new snapshot while this one is persisted.
        # Still under the lock, so that two checkpoint writes never race each other.
        if self._on_published is not None:
            self._on_published(previous, snapshot)
        return snapshot

    def _is_fresh(self, snapshot: Snapshot) -> bool:
        if self._expired:
            return False
        return self._clock.monotonic() - snapshot.taken_at < self._min_interval_seconds
