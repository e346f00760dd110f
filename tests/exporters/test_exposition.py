"""Exposition: each snapshot rendered once per content type, exact, with a per-scrape tail."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import replace
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from finance_exporter.collector import SnapshotCollector
from finance_exporter.exposition import Body, Exposition
from finance_exporter.snapshot import QueryState, Refresher, Snapshot
from finance_exporter.spec import MetricSpec, QuerySpec
from support.clock import FakeClock
from support.exposition import parse

MIN_INTERVAL_SECONDS = 30.0
GROSS = QuerySpec(
    name="gross",
    source="postgres",
    incremental=True,
    metric=MetricSpec(
        name="finance_gross_amount",
        kind="counter",
        help="Gross amount.",
        labels=("currency",),
        max_series=4,
    ),
)
USERS = QuerySpec(
    name="users",
    source="postgres",
    max_age_seconds=120.0,
    metric=MetricSpec(
        name="finance_users", kind="gauge", help="Users.", labels=("tier",), max_series=4
    ),
)
DEPTH = QuerySpec(
    name="depth",
    source="redis",
    max_age_seconds=3600.0,
    metric=MetricSpec(
        name="finance_latency_seconds",
        kind="histogram",
        help="Latency.",
        labels=("kind",),
        max_series=2,
        buckets=(0.5, 1.0),
    ),
)
SPECS = (GROSS, USERS, DEPTH)

# What Prometheus 3 sends by default (scrape_protocols), and the other content types it may ask.
PROMETHEUS_3_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
ACCEPTS = [
    "",
    "text/plain;version=0.0.4",
    "text/plain;version=1.0.0;escaping=underscores",
    "application/openmetrics-text; version=1.0.0",
    PROMETHEUS_3_ACCEPT,
]


class FixedLoader:
    """Loads the same values every time, stamped with the clock, and counts its loads."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.loads = 0

    def load(self, previous: Snapshot, deadline: float) -> Snapshot:
        self.loads += 1
        now = self.clock.time()
        values = {
            "gross": {("USD",): (Decimal("12.5"),), ("EUR",): (Decimal("3"),)},
            "users": {("pro",): (Decimal("4"),)},
            "depth": {("a", "0.5"): (Decimal("2"), Decimal("0.4"))},
        }
        queries = {
            name: replace(
                state,
                values=values[name],
                loaded_at=now,
                last_success=True,
                runs_total=state.runs_total + 1,
                watermark_since=now - 7.0 if state.spec.incremental else None,
            )
            for name, state in previous.queries.items()
        }
        return Snapshot(
            taken_at=self.clock.monotonic(),
            queries=queries,
            source_up={"postgres": True, "redis": True},
        )


def _exposition() -> tuple[Exposition, Refresher, FakeClock, FixedLoader]:
    clock = FakeClock()
    loader = FixedLoader(clock)
    initial = Snapshot.empty({spec.name: QueryState(spec=spec) for spec in SPECS})
    refresher = Refresher(loader, initial, MIN_INTERVAL_SECONDS, clock)
    return Exposition(refresher, clock), refresher, clock, loader


def _scrape(exposition: Exposition, accept: str = "", encoding: str = "") -> Body:
    return exposition.body(1e12, accept, encoding)


def _expected(refresher: Refresher, clock: FakeClock, accept: str) -> tuple[bytes, str]:
    """What prometheus_client renders for a registry holding the served snapshot, now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(refresher.current, clock.time(), clock.monotonic()))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


@pytest.mark.parametrize("accept", ACCEPTS)
def test_body_is_byte_for_byte_what_prometheus_client_renders(accept: str) -> None:
    exposition, refresher, clock, _ = _exposition()
    first = _scrape(exposition, accept)  # renders the fixed part
    clock.advance(5.0)
    second = _scrape(exposition, accept)  # the fixed part from the cache, a new tail
    data, content_type = _expected(refresher, clock, accept)
    assert (second.content_type, second.data, second.gzipped) == (content_type, data, False)
    assert first.data != second.data  # the snapshot's age moved
    assert exposition.renders == 1


def test_the_fixed_part_is_rendered_once_per_snapshot_and_content_type() -> None:
    exposition, _, clock, loader = _exposition()
    for _ in range(5):
        _scrape(exposition)
        clock.advance(1.0)
    assert (loader.loads, exposition.renders) == (1, 1)
    for _ in range(3):
        _scrape(exposition, PROMETHEUS_3_ACCEPT)
        _scrape(exposition, PROMETHEUS_3_ACCEPT, "gzip")
    assert exposition.renders == 2  # OpenMetrics once, gzip made from it without rendering
    clock.advance(MIN_INTERVAL_SECONDS)
    _scrape(exposition)
    _scrape(exposition)
    assert (loader.loads, exposition.renders) == (2, 3)


def test_timed_self_metrics_move_between_scrapes_of_one_snapshot() -> None:
    exposition, _, clock, loader = _exposition()
    before = parse(_scrape(exposition).data.decode())
    clock.advance(12.5)
    after = parse(_scrape(exposition).data.decode())
    assert loader.loads == 1
    assert after["finance_exporter_query_runs_total"] == before["finance_exporter_query_runs_total"]
    assert before["finance_exporter_snapshot_age_seconds"] == {(): 0.0}
    assert after["finance_exporter_snapshot_age_seconds"] == {(): 12.5}
    assert before["finance_exporter_watermark_lag_seconds"] == {(("query", "gross"),): 7.0}
    assert after["finance_exporter_watermark_lag_seconds"] == {(("query", "gross"),): 19.5}


def test_values_past_max_age_leave_the_cached_rendering() -> None:
    """With no refresh (min_interval longer than users' max_age), users drops out on time."""
    clock = FakeClock()
    initial = Snapshot.empty({spec.name: QueryState(spec=spec) for spec in SPECS})
    refresher = Refresher(FixedLoader(clock), initial, 3600.0, clock)
    exposition = Exposition(refresher, clock)
    assert "finance_users" in parse(_scrape(exposition).data.decode())
    clock.advance(USERS.max_age_seconds + 1.0)
    body = _scrape(exposition)
    assert "finance_users" not in parse(body.data.decode())
    assert body.data == _expected(refresher, clock, "")[0]
    assert exposition.renders == 2


@pytest.mark.parametrize("accept", ["", PROMETHEUS_3_ACCEPT])
def test_gzip_body_is_the_plain_body_compressed(accept: str) -> None:
    exposition, _, _, _ = _exposition()
    plain = _scrape(exposition, accept)
    compressed = _scrape(exposition, accept, "deflate, gzip;q=1.0")
    assert compressed.gzipped and compressed.content_type == plain.content_type
    text = gzip.decompress(compressed.data).decode()
    assert text == plain.data.decode()
    if plain.content_type.startswith("application/openmetrics-text"):
        assert text.endswith("# EOF\n") and text.count("# EOF") == 1
        families = {f.name: f for f in openmetrics_families(text)}
    else:
        families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"finance_gross_amount", "finance_users", "finance_latency_seconds"} <= set(families)


def test_gzip_body_is_two_members_of_one_stream() -> None:
    """The cached fixed part and the per-scrape tail: a reader that stops after one gzip member
    (Go's compress/gzip with Multistream(false)) would see only the first; Prometheus' default
    reader, like gzip(1) and Python's gzip module, reads both."""
    exposition, _, _, _ = _exposition()
    plain = _scrape(exposition).data
    compressed = _scrape(exposition, "", "gzip").data
    first = zlib.decompressobj(wbits=31)
    head = first.decompress(compressed)
    assert first.eof and plain.startswith(head) and len(head) < len(plain)
    assert head + gzip.decompress(first.unused_data) == plain
