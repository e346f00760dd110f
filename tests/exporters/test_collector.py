"""SnapshotCollector: one snapshot to fresh metric families, stale values left out, no I/O."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from finance_exporter.aggregate import Totals
from finance_exporter.collector import SnapshotCollector
from finance_exporter.snapshot import QueryState, Snapshot
from finance_exporter.spec import MetricSpec, QuerySpec
from support.exposition import Samples, by_label, parse

NOW = 1_700_000_000.0
MONOTONIC = 500.0

GAUGE = QuerySpec(
    name="users",
    source="postgres",
    max_age_seconds=60.0,
    metric=MetricSpec(
        name="finance_users", kind="gauge", help="Users.", labels=("tier",), max_series=4
    ),
)
COUNTER = QuerySpec(
    name="payments",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_payments_total",
        kind="counter",
        help="Payments.",
        labels=("status",),
        max_series=4,
    ),
)
HISTOGRAM = QuerySpec(
    name="latency",
    source="postgres",
    metric=MetricSpec(
        name="finance_latency_seconds",
        kind="histogram",
        help="Latency.",
        labels=("strategy",),
        max_series=2,
        buckets=(0.5, 1.0),
    ),
)
QUEUE = QuerySpec(
    name="queue",
    source="redis",
    metric=MetricSpec(
        name="finance_queue_depth", kind="gauge", help="Queue.", labels=("priority",), max_series=3
    ),
)


def _collect(snapshot: Snapshot) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, NOW, MONOTONIC))
    return parse(generate_latest(registry).decode())


def _snapshot(*states: QueryState, taken_at: float = MONOTONIC - 2.0) -> Snapshot:
    return Snapshot(
        taken_at=taken_at,
        queries={state.spec.name: state for state in states},
        source_up={"postgres": True, "redis": False},
    )


def test_describe_is_empty_so_registering_triggers_no_refresh() -> None:
    assert SnapshotCollector(_snapshot(), NOW, MONOTONIC).describe() == []


def test_gauges_and_counters_are_exposed_with_every_label_set() -> None:
    samples = _collect(
        _snapshot(
            QueryState(
                spec=GAUGE,
                values={("pro",): (Decimal("3"),), ("free",): (Decimal("0.5"),)},
                loaded_at=NOW - 1,
                last_success=True,
            ),
            QueryState(
                spec=COUNTER,
                values={("succeeded",): (Decimal("7"),)},
                loaded_at=NOW - 1,
                last_success=True,
            ),
        )
    )
    assert by_label(samples, "finance_users", "tier") == {("pro",): 3.0, ("free",): 0.5}
    assert by_label(samples, "finance_payments_total", "status") == {("succeeded",): 7.0}


def test_values_older_than_max_age_are_left_out_but_their_self_metrics_stay() -> None:
    stale = QueryState(
        spec=GAUGE,
        values={("pro",): (Decimal("3"),)},
        loaded_at=NOW - GAUGE.max_age_seconds - 1,
        last_success=False,
        runs_total=4,
        errors_total={"timeout": 2},
    )
    samples = _collect(_snapshot(stale))
    assert "finance_users" not in samples
    assert by_label(samples, "finance_exporter_query_success", "query") == {("users",): 0.0}
    assert by_label(samples, "finance_exporter_query_runs_total", "query") == {("users",): 4.0}
    assert by_label(samples, "finance_exporter_query_errors_total", "query", "reason") == {
        ("users", "unavailable"): 0.0,
        ("users", "timeout"): 2.0,
        ("users", "query"): 0.0,
        ("users", "deadline"): 0.0,
        ("users", "internal"): 0.0,
    }
    assert by_label(samples, "finance_exporter_query_last_success_timestamp_seconds", "query") == {
        ("users",): NOW - GAUGE.max_age_seconds - 1
    }


def test_histogram_rows_fold_into_cumulative_buckets_at_every_bound() -> None:
    state = QueryState(
        spec=HISTOGRAM,
        values={
            ("a", "0.5"): (Decimal(2), Decimal("0.6")),
            ("a", "1.0"): (Decimal(1), Decimal("0.9")),
            ("b", "1.0"): (Decimal(3), Decimal("2.4")),
        },
        loaded_at=NOW,
        last_success=True,
    )
    samples = _collect(_snapshot(state))
    assert by_label(samples, "finance_latency_seconds_bucket", "strategy", "le") == {
        ("a", "0.5"): 2.0,
        ("a", "1.0"): 3.0,
        ("a", "+Inf"): 3.0,
        ("b", "0.5"): 0.0,
        ("b", "1.0"): 3.0,
        ("b", "+Inf"): 3.0,
    }
    assert by_label(samples, "finance_latency_seconds_count", "strategy") == {
        ("a",): 3.0,
        ("b",): 3.0,
    }
    assert by_label(samples, "finance_latency_seconds_sum", "strategy") == {
        ("a",): 1.5,
        ("b",): 2.4,
    }


def test_self_metrics_describe_sources_queries_age_and_watermark_lag() -> None:
    never_run = QueryState(spec=QUEUE)
    incremental = QueryState(
        spec=COUNTER,
        values={},
        loaded_at=NOW - 5,
        last_success=True,
        duration_seconds=0.25,
        runs_total=2,
        skipped_total={"null": 3},
        watermark_since=NOW - 40,
    )
    samples = _collect(_snapshot(never_run, incremental))
    assert by_label(samples, "finance_exporter_up", "source") == {
        ("postgres",): 1.0,
        ("redis",): 0.0,
    }
    assert by_label(samples, "finance_exporter_query_success", "query") == {
        ("payments",): 1.0,
        ("queue",): 0.0,
    }
    assert by_label(samples, "finance_exporter_query_duration_seconds", "query") == {
        ("payments",): 0.25,
        ("queue",): 0.0,
    }
    # A query that never succeeded has no last-success timestamp (absent, not 0).
    assert by_label(samples, "finance_exporter_query_last_success_timestamp_seconds", "query") == {
        ("payments",): NOW - 5
    }
    assert by_label(samples, "finance_exporter_skipped_values_total", "query", "reason") == {
        ("payments", "null"): 3.0
    }
    assert by_label(samples, "finance_exporter_watermark_lag_seconds", "query") == {
        ("payments",): 40.0
    }
    assert samples["finance_exporter_snapshot_age_seconds"] == {(): 2.0}


def test_a_query_being_backfilled_shows_its_progress_and_no_values() -> None:
    folding = QueryState(spec=COUNTER, backfill_ratio=0.25)
    folded = QueryState(
        spec=replace(COUNTER, name="refunds"),
        values={("ok",): (Decimal(3),)},
        loaded_at=NOW,
        totals=Totals(watermark=9, values={("ok",): (Decimal(3),)}),
    )
    samples = _collect(_snapshot(folding, folded, QueryState(spec=GAUGE)))
    # Gauges and Redis reads have no fold: only the incremental queries are listed.
    assert by_label(samples, "finance_exporter_backfill_in_progress", "query") == {
        ("payments",): 1.0,
        ("refunds",): 0.0,
    }
    assert by_label(samples, "finance_exporter_backfill_progress_ratio", "query") == {
        ("payments",): 0.25,
        ("refunds",): 1.0,
    }
    assert by_label(samples, "finance_payments_total", "status") == {("ok",): 3.0}


def test_the_empty_snapshot_has_no_age() -> None:
    samples = _collect(Snapshot.empty({QUEUE.name: QueryState(spec=QUEUE)}))
    assert "finance_exporter_snapshot_age_seconds" not in samples
    assert by_label(samples, "finance_exporter_up", "source") == {("redis",): 0.0}
    assert "finance_queue_depth" not in samples


def test_an_infinite_gauge_is_written_as_plus_inf() -> None:
    state = QueryState(
        spec=QUEUE,
        values={("high",): (Decimal("Infinity"),)},
        loaded_at=NOW - 1,
        last_success=True,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(_snapshot(state), NOW, MONOTONIC))
    assert 'finance_queue_depth{priority="high"} +Inf\n' in generate_latest(registry).decode()
