"""Runs each query of a refresh within its budget and folds the results into a new Snapshot."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from opentelemetry.trace import Tracer

from finance_exporter import tracing
from finance_exporter.aggregate import Totals, apply
from finance_exporter.backfill import Backfill
from finance_exporter.checkpoint import CheckpointStore, Entry, Partial, fingerprint
from finance_exporter.errors import SourceError, SourceTimeoutError, SourceUnavailableError
from finance_exporter.snapshot import Clock, QueryState, Snapshot
from finance_exporter.sources.postgres import PostgresSource
from finance_exporter.sources.redis import RedisSource
from finance_exporter.spec import QuerySpec
from finance_exporter.values import Shaped, cap_series, shape_redis, shape_rows

logger = logging.getLogger(__name__)

UNAVAILABLE = SourceUnavailableError.reason
TIMEOUT = SourceTimeoutError.reason
INTERNAL = "internal"
DEADLINE = "deadline"  # the scrape's deadline left no time for this query
BACKFILL = "backfill"  # not run: the query's first fold is still running in the background

# Below this budget a query is not started: it could not finish before the scrape deadline.
MIN_QUERY_BUDGET_SECONDS = 0.05


class _Recount(Exception):
    """The totals belong to another database or a later one: fold the history again."""


class QueryLoader:
    """Loads every query from Postgres and Redis, keeping the previous value when one fails.

    With a `backfill`, an incremental query without totals is not run by a refresh: its first
    fold (and any recount) runs in the background, and the query is served from the refresh
    after that fold is complete. Without one, the first fold is one statement in the refresh.
    """

    def __init__(
        self,
        queries: Sequence[QuerySpec],
        postgres: PostgresSource | None,
        redis: RedisSource | None,
        checkpoints: CheckpointStore,
        clock: Clock,
        exporter: str = "",
        tracer: Tracer | None = None,
        backfill: Backfill | None = None,
    ) -> None:
        self._queries = tuple(queries)
        self._postgres = postgres
        self._redis = redis
        self._checkpoints = checkpoints
        self._clock = clock
        self._exporter = exporter
        self._tracer = tracer or tracing.get_tracer(None)
        self._backfill = backfill

    def initial(self) -> Snapshot:
        """The first snapshot: no values yet, incremental totals restored from the checkpoint.

        A query with no saved totals starts (or resumes) its first fold in the background.
        """
        saved = self._checkpoints.load()
        partials = self._checkpoints.partials()
        states: dict[str, QueryState] = {}
        for spec in self._queries:
            entry = saved.get(spec.name)
            if spec.incremental and entry is not None and entry.fingerprint == fingerprint(spec):
                states[spec.name] = QueryState(
                    spec=spec, totals=entry.totals, database=entry.database
                )
            elif self._backfills(spec):
                partial = partials.get(spec.name)
                if partial is not None and partial.fingerprint != fingerprint(spec):
                    partial = None
                self._start_backfill(spec, partial)
                states[spec.name] = QueryState(spec=spec, backfill_ratio=0.0)
            else:
                states[spec.name] = QueryState(spec=spec)
        return Snapshot.empty(states)

    def _backfills(self, spec: QuerySpec) -> bool:
        return self._backfill is not None and spec.incremental and spec.source == "postgres"

    def _start_backfill(self, spec: QuerySpec, partial: Partial | None = None) -> None:
        assert self._backfill is not None
        self._backfill.start(spec, partial)

    def load(self, previous: Snapshot, deadline: float) -> Snapshot:
        """Run every query once, each bounded by its own timeout and the shared deadline.

        The totals are not checkpointed here: see `save_checkpoint`.
        """
        states: dict[str, QueryState] = {}
        refused: set[str] = set()  # sources that refused a connection: skip their other queries
        failed: set[str] = set()  # sources that refused or timed out during this refresh
        answered: set[str] = set()
        with tracing.refresh_span(self._tracer, self._exporter, len(self._queries)) as refresh:
            for spec in self._queries:
                before = previous.queries[spec.name]
                with tracing.query_span(self._tracer, spec):
                    after, reason = self._step(before, spec.source in refused, deadline)
                if reason == UNAVAILABLE:
                    refused.add(spec.source)
                if reason in (UNAVAILABLE, TIMEOUT):
                    failed.add(spec.source)
                elif reason not in (DEADLINE, BACKFILL):
                    answered.add(spec.source)
                _log_transition(before, after, reason)
                states[spec.name] = after
            # A query waiting for its first fold did not fail: it was not due to run.
            failed_queries = sum(
                not s.last_success and s.backfill_ratio is None for s in states.values()
            )
            tracing.refresh_done(refresh, failed_queries)
        if self._backfill is not None and not {"postgres"} & (answered | failed):
            # No refresh query reached Postgres (every one is being folded): the folds did.
            if self._backfill.answered is not None:
                (answered if self._backfill.answered else failed).add("postgres")
        source_up = dict(previous.source_up)
        source_up.update(dict.fromkeys(answered, True))
        source_up.update(dict.fromkeys(failed, False))
        return Snapshot(taken_at=self._clock.monotonic(), queries=states, source_up=source_up)

    def _step(
        self, before: QueryState, refused: bool, deadline: float
    ) -> tuple[QueryState, str | None]:
        """Run one query unless its source refused already or the deadline leaves no time."""
        if before.totals is None and self._backfills(before.spec):
            before = self._adopt(before)
            if before.totals is None:
                return before, BACKFILL
        budget = min(before.spec.timeout_seconds, deadline - self._clock.monotonic())
        if refused:
            skipped = UNAVAILABLE
        elif budget < MIN_QUERY_BUDGET_SECONDS:
            skipped = DEADLINE
        else:
            return self._run(before, budget)
        tracing.record_failure(skipped)
        return before.failed(skipped), skipped

    def _run(self, state: QueryState, budget: float) -> tuple[QueryState, str | None]:
        """Run one query; return the new state and the failure reason (None on success)."""
        spec = state.spec
        started = self._clock.monotonic()
        try:
            if spec.source == "redis":
                shaped, totals, database = self._read_redis(spec, budget), None, ""
            elif spec.incremental:
                shaped, totals, database = self._fold(state, budget)
            else:
                shaped, totals, database = self._read_postgres(spec, budget), None, ""
        except _Recount:
            self._start_backfill(spec)
            return _recounting(state), BACKFILL
        except SourceError as err:
            logger.debug("query failed", extra={"query": spec.name, "error.message": str(err)})
            tracing.record_failure(err.reason, err)
            return state.failed(err.reason, self._clock.monotonic() - started), err.reason
        except Exception as err:
            # A bug must not take /metrics down: count it, log it once, keep the previous value.
            if state.last_success or state.runs_total == 0:
                logger.exception("query crashed", extra={"query": spec.name})
            tracing.record_failure(INTERNAL, err)
            return state.failed(INTERNAL, self._clock.monotonic() - started), INTERNAL
        skipped = Counter(state.skipped_total)
        skipped.update(shaped.skipped)
        now = self._clock.time()
        watermark_since = state.watermark_since
        if totals is not None and (
            state.totals is None or totals.watermark != state.totals.watermark
        ):
            watermark_since = now
        after = replace(
            state,
            values=shaped.values if totals is None else totals.values,
            loaded_at=now,
            last_success=True,
            duration_seconds=self._clock.monotonic() - started,
            runs_total=state.runs_total + 1,
            skipped_total=dict(skipped),
            totals=totals,
            database=database or state.database,
            watermark_since=watermark_since,
        )
        return after, None

    def _adopt(self, state: QueryState) -> QueryState:
        """The state with its completed first fold, else with the fold's progress."""
        assert self._backfill is not None
        folded = self._backfill.take(state.spec.name)
        if folded is None:
            ratio = self._backfill.ratio(state.spec.name)
            if ratio is None:  # no fold running for it (cannot happen, but must not stall)
                self._start_backfill(state.spec)
            failing = self._backfill.failing(state.spec.name)
            return replace(state, backfill_ratio=ratio or 0.0, backfill_failing=failing)
        skipped = Counter(state.skipped_total)
        skipped.update(folded.skipped)
        return replace(
            state,
            totals=folded.totals,
            database=folded.database,
            skipped_total=dict(skipped),
            backfill_ratio=None,
            backfill_failing=False,
        )

    def _read_redis(self, spec: QuerySpec, budget: float) -> Shaped:
        if self._redis is None or spec.redis is None:
            raise SourceUnavailableError("redis is not configured")
        replies = self._redis.fetch(spec.redis, budget)
        tracing.record_rows(len(replies))
        shaped = shape_redis(spec.metric, spec.redis, replies, self._clock.time())
        return cap_series(shaped, spec.metric)

    def _read_postgres(self, spec: QuerySpec, budget: float) -> Shaped:
        postgres = self._require_postgres()
        params: Mapping[str, object] = _extra_params(spec)
        result = postgres.fetch(spec.sql, params, budget)
        tracing.record_rows(len(result.rows))
        return cap_series(shape_rows(spec.metric, result.columns, result.rows), spec.metric)

    def _fold(self, state: QueryState, budget: float) -> tuple[Shaped, Totals, str]:
        postgres = self._require_postgres()
        spec = state.spec
        database = postgres.identity(budget)
        totals = state.totals or Totals()
        if state.database and state.database != database:
            logger.warning(
                "database changed, recounting", extra={"query": spec.name, "database": database}
            )
            if self._backfills(spec):
                raise _Recount
            totals = Totals()
        params = {**_extra_params(spec), "low": str(totals.watermark)}
        result = postgres.fetch(spec.sql, params, budget, incremental=True)
        high = result.high if result.high is not None else totals.watermark
        if high < totals.watermark:
            # The database's transaction ids went back: it was restored or replaced.
            logger.warning("watermark ahead of database, recounting", extra={"query": spec.name})
            if self._backfills(spec):
                raise _Recount
            totals = Totals()
            result = postgres.fetch(spec.sql, {**params, "low": "0"}, budget, incremental=True)
            high = result.high or 0
        tracing.record_rows(len(result.rows))
        batch = shape_rows(spec.metric, result.columns, result.rows)
        fold = apply(totals, batch, high, spec.metric)
        # fold.skipped holds the batch's bad values plus any series over the budget.
        return Shaped(values=fold.totals.values, skipped=fold.skipped), fold.totals, database

    def _require_postgres(self) -> PostgresSource:
        if self._postgres is None:
            raise SourceUnavailableError("postgres is not configured")
        return self._postgres

    def save_checkpoint(self, previous: Snapshot, snapshot: Snapshot) -> None:
        """Persist the incremental totals of `snapshot` if they moved since `previous`.

        The refresher calls this once the snapshot is served, so no scrape waits for the fsync.
        """
        states = snapshot.queries
        changed = any(
            state.totals is not None and state.totals != previous.queries[name].totals
            for name, state in states.items()
        )
        if not changed:
            return
        entries = {
            name: Entry(
                fingerprint=fingerprint(state.spec), database=state.database, totals=state.totals
            )
            for name, state in states.items()
            if state.totals is not None
        }
        try:
            self._checkpoints.save(entries)
        except OSError as err:
            logger.warning("checkpoint not saved", extra={"error.message": str(err)})


def _extra_params(spec: QuerySpec) -> dict[str, object]:
    return {"buckets": list(spec.metric.buckets)} if spec.metric.buckets else {}


def _recounting(state: QueryState) -> QueryState:
    """The state while its history is folded again: nothing served until the fold is complete."""
    return replace(
        state,
        values={},
        loaded_at=None,
        totals=None,
        database="",
        watermark_since=None,
        backfill_ratio=0.0,
    )


def _log_transition(before: QueryState, after: QueryState, reason: str | None) -> None:
    # Log changes of state only, not every scrape; a running backfill logs its own.
    if reason == BACKFILL:
        return
    if reason is not None and (before.last_success or before.runs_total == 0):
        logger.warning("query failing", extra={"query": after.spec.name, "reason": reason})
    elif reason is None and not before.last_success and before.runs_total > 0:
        logger.info("query recovered", extra={"query": after.spec.name})
