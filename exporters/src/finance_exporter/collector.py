"""Collector: turns a Snapshot into fresh metric families (no I/O).

The families come in two parts. `fixed()` depends only on the snapshot and on which of its values
are stale at the scrape's time; `timed()` (the watermark lags and the snapshot's age) moves with
the clock. http.py renders the first part once per snapshot and the second on every scrape.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from decimal import Decimal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from finance_exporter import selfmetrics as sm
from finance_exporter.snapshot import QueryState, Snapshot
from finance_exporter.values import Key, Values, format_float


class SnapshotCollector:
    """Exposes one snapshot; values older than their query's max_age are left out."""

    def __init__(self, snapshot: Snapshot, now: float, monotonic_now: float) -> None:
        self._snapshot = snapshot
        self._now = now
        self._monotonic_now = monotonic_now

    def describe(self) -> list[Metric]:
        """Nothing: registering must not trigger a refresh."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield the business metrics, then the exporter's own."""
        yield from self.fixed()
        yield from self.timed()

    def stale(self) -> frozenset[str]:
        """Names of the queries whose values are past their max_age and left out."""
        return frozenset(
            name for name, state in self._snapshot.queries.items() if state.is_stale(self._now)
        )

    def fixed(self) -> Iterator[Metric]:
        """The families that are the same for every scrape with the same stale queries."""
        for state in self._snapshot.queries.values():
            if not state.is_stale(self._now):
                yield _family(state)
        yield from self._self_metrics()

    def timed(self) -> Iterator[Metric]:
        """The families whose values depend on the time of the scrape; they come last."""
        lag = GaugeMetricFamily(sm.WATERMARK_LAG, sm.WATERMARK_LAG_HELP, labels=["query"])
        for name, state in sorted(self._snapshot.queries.items()):
            if state.spec.incremental and state.watermark_since is not None:
                lag.add_metric([name], max(self._now - state.watermark_since, 0.0))
        yield lag
        age = self._monotonic_now - self._snapshot.taken_at
        if age != float("inf"):
            yield GaugeMetricFamily(sm.SNAPSHOT_AGE, sm.SNAPSHOT_AGE_HELP, value=max(age, 0.0))

    def _self_metrics(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(sm.UP, sm.UP_HELP, labels=["source"])
        for source, is_up in sorted(self._snapshot.source_up.items()):
            up.add_metric([source], 1.0 if is_up else 0.0)
        yield up
        success = GaugeMetricFamily(sm.QUERY_SUCCESS, sm.QUERY_SUCCESS_HELP, labels=["query"])
        duration = GaugeMetricFamily(sm.QUERY_DURATION, sm.QUERY_DURATION_HELP, labels=["query"])
        # The query's datastore (`source`, as in finance_exporter_up) lets an alert about a
        # datastore that is down mute only the queries that read it.
        last = GaugeMetricFamily(
            sm.QUERY_LAST_SUCCESS, sm.QUERY_LAST_SUCCESS_HELP, labels=["query", "source"]
        )
        runs = CounterMetricFamily(sm.QUERY_RUNS, sm.QUERY_RUNS_HELP, labels=["query", "source"])
        errors = CounterMetricFamily(
            sm.QUERY_ERRORS, sm.QUERY_ERRORS_HELP, labels=["query", "source", "reason"]
        )
        skipped = CounterMetricFamily(
            sm.SKIPPED_VALUES, sm.SKIPPED_VALUES_HELP, labels=["query", "reason"]
        )
        backfilling = GaugeMetricFamily(
            sm.BACKFILL_IN_PROGRESS, sm.BACKFILL_IN_PROGRESS_HELP, labels=["query"]
        )
        progress = GaugeMetricFamily(
            sm.BACKFILL_PROGRESS, sm.BACKFILL_PROGRESS_HELP, labels=["query"]
        )
        failing = GaugeMetricFamily(sm.BACKFILL_FAILING, sm.BACKFILL_FAILING_HELP, labels=["query"])
        for name, state in sorted(self._snapshot.queries.items()):
            if state.spec.incremental:
                ratio = state.backfill_ratio
                backfilling.add_metric([name], 0.0 if ratio is None else 1.0)
                failing.add_metric([name], 1.0 if state.backfill_failing else 0.0)
                if ratio is None:
                    ratio = 0.0 if state.totals is None else 1.0
                progress.add_metric([name], ratio)
            success.add_metric([name], 1.0 if state.last_success else 0.0)
            duration.add_metric([name], state.duration_seconds)
            source = state.spec.source
            if state.loaded_at is not None:
                last.add_metric([name, source], state.loaded_at)
            runs.add_metric([name, source], float(state.runs_total))
            for reason in sm.REFRESH_REASONS:
                errors.add_metric([name, source, reason], float(state.errors_total.get(reason, 0)))
            for reason, count in sorted(state.skipped_total.items()):
                skipped.add_metric([name, reason], float(count))
        yield from (success, duration, last, runs, errors, skipped, backfilling, progress, failing)


def _family(state: QueryState) -> Metric:
    metric = state.spec.metric
    labels = list(metric.labels)
    if metric.kind == "histogram":
        histogram = HistogramMetricFamily(metric.name, metric.help, labels=labels)
        for key, (buckets, total) in sorted(_histograms(state.values, metric.buckets).items()):
            histogram.add_metric(list(key), buckets=buckets, sum_value=float(total))
        return histogram
    family: CounterMetricFamily | GaugeMetricFamily
    if metric.kind == "counter":
        family = CounterMetricFamily(metric.name, metric.help, labels=labels)
    else:
        family = GaugeMetricFamily(metric.name, metric.help, labels=labels)
    for key, values in sorted(state.values.items()):
        family.add_metric(list(key), float(values[0]))
    return family


def _histograms(
    values: Mapping[Key, Values], bounds: tuple[float, ...]
) -> dict[Key, tuple[list[tuple[str, float]], Decimal]]:
    """Fold (labels..., le) -> (count, sum) rows into cumulative buckets at every declared bound."""
    per_key: dict[Key, list[tuple[float, Decimal, Decimal]]] = defaultdict(list)
    for key, (count, total) in values.items():
        per_key[key[:-1]].append((float(key[-1]), count, total))
    shaped: dict[Key, tuple[list[tuple[str, float]], Decimal]] = {}
    for key, rows in per_key.items():
        buckets = [
            (
                format_float(bound),
                float(sum((c for le, c, _ in rows if le <= bound), Decimal(0))),
            )
            for bound in (*bounds, math.inf)
        ]
        shaped[key] = (buckets, sum((total for _, _, total in rows), Decimal(0)))
    return shaped
