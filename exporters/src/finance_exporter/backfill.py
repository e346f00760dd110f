"""The first fold of an incremental query's history, in the background and in bounded chunks.

A query without checkpointed totals must fold its whole history, the rows final in [0, xmin).
In one statement inside a scrape's deadline that took 3-4 s at 1e7 payments, was cancelled next
to a busy database, and the next attempt started again from zero. Here the fold runs on its own
thread and its own connection (PostgresSource is not thread-safe), chunk by chunk, outside any
scrape's deadline, checkpointing after each chunk so that a restart resumes it. The loader
serves the query only once its fold is complete (a partial counter that later jumps would read
as a huge rate), and then folds on from the fold's target like any refresh.

Exactness. The target H is pg_snapshot_xmin when the fold starts: every transaction below H has
finished, so every row final below H is visible to each chunk's later snapshot, and no new row can
become final below H. The chunks [w, w2) partition [0, H), each folded once; the loader then folds
[H, xmin) and on, as it always does. Rows made final while the fold runs are above H: counted
once, by the loader, after the fold.

Chunks set only the query's own %(low)s and %(high)s, so any incremental query is chunked the
same way without knowing its tables; chunking.py sets their width.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from finance_exporter import chunking
from finance_exporter.aggregate import Totals, apply
from finance_exporter.checkpoint import CheckpointStore, Partial, fingerprint
from finance_exporter.errors import SourceError, SourceTimeoutError
from finance_exporter.snapshot import Clock
from finance_exporter.sources.postgres import PostgresSource
from finance_exporter.spec import QuerySpec
from finance_exporter.values import shape_rows

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # wait after a failed chunk (datastore down, bad query) before retrying

_XMIN_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text"

Outcome = Literal["idle", "ran", "failed"]


@dataclass(frozen=True)
class Folded:
    """A complete first fold: totals for every row final below `totals.watermark`."""

    totals: Totals
    database: str
    skipped: Mapping[str, int]


@dataclass
class _Job:
    """One query's fold; mutated only by the thread that runs the chunks, under the lock."""

    spec: QuerySpec
    partial: Partial | None  # None until the fold has its target
    checked: bool  # a resumed fold was checked against the database it runs on
    timeout_seconds: float
    span: int = chunking.INITIAL_SPAN
    chunks: int = 0
    failing: bool = False
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> bool:
        return self.partial is not None and self.partial.totals.watermark >= self.partial.target

    def ratio(self) -> float:
        """The share of the range that holds data, [start, target), folded so far."""
        partial = self.partial
        if partial is None or partial.start is None:
            return 1.0 if self.done else 0.0
        if partial.target <= partial.start:
            return 1.0
        return min((partial.totals.watermark - partial.start) / (partial.target - partial.start), 1)


class Backfill:
    """Runs the first folds one chunk at a time, on its own thread (`start_thread`) or by `step`."""

    def __init__(
        self,
        postgres: PostgresSource,
        checkpoints: CheckpointStore,
        clock: Clock,
        timeout_seconds: float,
    ) -> None:
        self._postgres = postgres
        self._checkpoints = checkpoints
        self._clock = clock
        self._timeout_seconds = timeout_seconds
        self._jobs: dict[str, _Job] = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Called when a fold completes, so its totals are served at once (cli: Refresher.expire).
        self.on_done: Callable[[], None] | None = None
        # Whether Postgres answered the latest step (None before the first): while every query
        # of an exporter is being folded, this is the only word on its datastore.
        self.answered: bool | None = None

    def start(self, spec: QuerySpec, saved: Partial | None = None) -> None:
        """Fold `spec`'s history, from zero or resuming `saved` (same query, checked later)."""
        job = _Job(spec, saved, checked=False, timeout_seconds=self._timeout_seconds)
        with self._changed:
            self._jobs[spec.name] = job
            self._changed.notify_all()

    def ratio(self, name: str) -> float | None:
        """How far the fold of query `name` is, 0..1; None if it has none running."""
        with self._changed:
            job = self._jobs.get(name)
            return None if job is None else job.ratio()

    def failing(self, name: str) -> bool:
        """Whether the latest attempt of query `name`'s fold failed (it is retried)."""
        with self._changed:
            job = self._jobs.get(name)
            return job is not None and job.failing

    def take(self, name: str) -> Folded | None:
        """The complete fold of query `name`, handed over once; None while it is not complete."""
        with self._changed:
            job = self._jobs.get(name)
            if job is None or not job.done or job.partial is None:
                return None
            del self._jobs[name]
            return Folded(job.partial.totals, job.partial.database, dict(job.skipped))

    def wait_settled(self, timeout_seconds: float) -> bool:
        """Wait until every fold is complete or one is failing (the folds run one at a time, so
        the others wait behind it); False if `timeout_seconds` ran out."""
        with self._changed:
            return self._changed.wait_for(self._settled, timeout=timeout_seconds)

    def _settled(self) -> bool:
        jobs = self._jobs.values()
        return all(job.done for job in jobs) or any(job.failing for job in jobs)

    def step(self) -> Outcome:
        """Run one chunk (or the start) of the first fold not yet complete."""
        with self._changed:
            job = next((j for j in self._jobs.values() if not j.done), None)
        if job is None:
            return "idle"
        try:
            if job.partial is None or not job.checked:
                self._begin(job)
            else:
                self._chunk(job)
        except SourceTimeoutError:
            self._narrow(job)  # Postgres answered: it cancelled the statement at its timeout
        except SourceError as err:
            self.answered = err.reason not in ("unavailable", "timeout")
            self._fail(job, err.reason, str(err))
            return "failed"
        except Exception as err:
            # A bug must not stop the other folds or take /metrics down: log it, retry later.
            if not job.failing:
                logger.exception("backfill crashed", extra={"query": job.spec.name})
            self._fail(job, "internal", str(err))
            return "failed"
        self.answered = True
        with self._changed:
            if job.failing:
                logger.info("backfill recovered", extra={"query": job.spec.name})
            job.failing = False
            self._changed.notify_all()
        return "ran"

    def _begin(self, job: _Job) -> None:
        """Fix the target H, or check that a resumed fold still belongs to this database."""
        database = self._postgres.identity(job.timeout_seconds)
        rows = self._postgres.fetch(_XMIN_SQL, {}, job.timeout_seconds).rows
        xmin = int(str(rows[0][0])) if rows else 0
        name = job.spec.name
        saved = job.partial
        if saved is not None and saved.database != database:
            logger.warning("database changed, recounting", extra={"query": name})
            saved = None
        elif saved is not None and saved.target > xmin:
            # The database's transaction ids went back: it was restored or replaced.
            logger.warning("watermark ahead of database, recounting", extra={"query": name})
            saved = None
        if saved is None:
            partial = Partial(fingerprint(job.spec), database, Totals(), target=xmin)
            logger.info("backfill started", extra={"query": name, "target": xmin})
        else:
            partial = saved
            logger.info(
                "backfill resumed",
                extra={"query": name, "watermark": saved.totals.watermark, "target": saved.target},
            )
        self._advance(job, partial, checked=True)

    def _chunk(self, job: _Job) -> None:
        """Fold the rows final in [w, w2), then widen or narrow the next chunk by its cost."""
        partial = job.partial
        assert partial is not None
        spec = job.spec
        low = partial.totals.watermark
        high = min(low + job.span, partial.target)
        params: dict[str, object] = {"low": str(low), "high": str(high)}
        if spec.metric.buckets:
            params["buckets"] = list(spec.metric.buckets)
        started = self._clock.monotonic()
        result = self._postgres.fetch(spec.sql, params, job.timeout_seconds)
        elapsed = self._clock.monotonic() - started
        logger.debug(
            "backfill chunk",
            extra={
                "query": spec.name,
                "low": low,
                "high": high,
                "rows": len(result.rows),
                "elapsed_seconds": elapsed,
            },
        )
        fold = apply(
            partial.totals, shape_rows(spec.metric, result.columns, result.rows), high, spec.metric
        )
        start = partial.start if partial.start is not None or not result.rows else low
        with self._changed:
            job.span = chunking.next_span(job.span, elapsed, job.timeout_seconds)
            job.chunks += 1
            job.skipped.update(fold.skipped)
        self._advance(job, replace(partial, totals=fold.totals, start=start), checked=True)
        if job.done:
            logger.info(
                "backfill done",
                extra={"query": spec.name, "chunks": job.chunks, "target": partial.target},
            )
            if self.on_done is not None:
                self.on_done()

    def _advance(self, job: _Job, partial: Partial, checked: bool) -> None:
        """Record the fold's progress, in memory and then in the checkpoint."""
        with self._changed:
            job.partial = partial
            job.checked = checked
        try:
            self._checkpoints.save_partial(job.spec.name, partial)
        except OSError as err:
            logger.warning("checkpoint not saved", extra={"error.message": str(err)})

    def _narrow(self, job: _Job) -> None:
        """After a statement timeout: a narrower chunk, or a longer timeout for a single id."""
        with self._changed:
            job.span, job.timeout_seconds = chunking.after_timeout(job.span, job.timeout_seconds)
            span, timeout = job.span, job.timeout_seconds
        logger.info(
            "backfill chunk timeout",
            extra={"query": job.spec.name, "chunk_span": span, "timeout_seconds": timeout},
        )

    def _fail(self, job: _Job, reason: str, message: str) -> None:
        with self._changed:
            if not job.failing:
                logger.warning(
                    "backfill failing",
                    extra={"query": job.spec.name, "reason": reason, "error.message": message},
                )
            job.failing = True
            self._changed.notify_all()

    def run(self) -> None:
        """Run chunks until stopped, waiting for work when idle and a while after a failure."""
        while not self._stop.is_set():
            outcome = self.step()
            if outcome == "failed":
                self._stop.wait(RETRY_SECONDS)
            elif outcome == "idle":
                # Nothing to fold: give the connection back (the role's connection limit is small).
                self._postgres.close()
                with self._changed:
                    self._changed.wait_for(
                        lambda: self._stop.is_set() or not all(j.done for j in self._jobs.values()),
                        timeout=60,
                    )

    def start_thread(self) -> None:
        """Run the folds on a daemon thread of their own."""
        self._thread = threading.Thread(target=self.run, name="backfill", daemon=True)
        self._thread.start()

    def halt(self) -> None:
        """Begin no chunk or fold from now on (the running one ends). Only sets a flag: safe in
        a signal handler, which must not wait for the lock a /metrics request may hold."""
        self._stop.set()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Stop after the running chunk (its progress is checkpointed) and close the connection."""
        self.halt()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout_seconds)
            if self._thread.is_alive():
                return  # a chunk still runs: its statement timeout ends it; the thread is a daemon
        self._postgres.close()
