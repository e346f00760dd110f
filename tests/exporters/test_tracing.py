"""Refresh spans: one root per refresh, a child per query, failures recorded, OTLP/HTTP out."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import redis
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from finance_exporter import tracing
from finance_exporter.config import Options, load_settings
from finance_exporter.domains import DOMAINS
from finance_exporter.domains.portfolio import PROVIDERS
from finance_exporter.errors import ConfigError
from support.datastores import Database, RedisDb, StartExporter
from support.exposition import fetch, scrape
from support.servers import free_port

ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"


def recording(exporter: str) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider that keeps every ended span in memory, with the exporter's resource."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=tracing.resource(exporter), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider, spans


def tree(spans: tuple[ReadableSpan, ...]) -> tuple[ReadableSpan, dict[str, ReadableSpan]]:
    """The single root span and its children by query name; fails on any other shape."""
    roots = [span for span in spans if span.parent is None]
    assert len(roots) == 1, [span.name for span in roots]
    root = roots[0]
    children = {str(span.attributes["finance.query.name"]): span for span in spans if span.parent}
    assert len(children) == len(spans) - 1
    for child in children.values():
        assert child.parent is not None and child.context is not None and root.context is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id
    return root, children


def exception_types(span: ReadableSpan) -> list[object]:
    return [event.attributes["exception.type"] for event in span.events if event.attributes]


def test_a_refresh_is_one_root_span_with_one_database_span_per_query(
    database: Database, redis_db: RedisDb, start_exporter: StartExporter
) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        for n, account_type in enumerate(("individual", "joint"), start=1):
            conn.execute("INSERT INTO users (email, tier) VALUES (%s, 'pro')", (f"u{n}@x",))
            conn.execute(
                "INSERT INTO portfolios (user_id, account_type) VALUES (%s, %s)", (n, account_type)
            )
            conn.execute(
                "INSERT INTO positions (portfolio_id, symbol, quantity, avg_price)"
                " VALUES (%s, 'AAPL', 1, 100)",
                (n,),
            )
    redis.Redis.from_url(redis_db.admin_url).rpush("orders:queue:high", "1", "2")
    provider, spans = recording("portfolio")
    exporter = start_exporter(
        "portfolio", database.exporter_url, redis_db.exporter_url, tracer_provider=provider
    )

    scrape(exporter)

    root, children = tree(spans.get_finished_spans())
    assert root.name == "refresh portfolio"
    assert root.kind == SpanKind.INTERNAL
    assert root.status.status_code == StatusCode.UNSET
    assert root.attributes == {
        "finance.refresh.queries": 8,
        "finance.refresh.queries_failed": 0,
    }
    assert set(children) == {query.name for query in DOMAINS["portfolio"]}
    for query in DOMAINS["portfolio"]:
        child = children[query.name]
        assert child.kind == SpanKind.CLIENT
        assert child.status.status_code == StatusCode.UNSET, query.name
        assert child.events == ()
        system = {"postgres": "postgresql", "redis": "redis"}[query.source]
        assert child.attributes is not None
        assert child.attributes["db.system.name"] == child.attributes["db.system"] == system
        assert child.attributes["db.query.summary"] == child.name
    assert dict(children["open_positions"].attributes or {}) == {
        "finance.query.name": "open_positions",
        "finance.query.incremental": False,
        "db.system.name": "postgresql",
        "db.system": "postgresql",
        "db.operation.name": "SELECT",
        "db.query.summary": "SELECT open_positions",
        "db.response.returned_rows": 2,
    }
    assert children["orders"].attributes is not None
    assert children["orders"].attributes["finance.query.incremental"] is True
    assert children["orders"].attributes["db.response.returned_rows"] == 0
    # Three priorities read in one pipeline of LLEN: a batch of three.
    assert dict(children["order_queue"].attributes or {}) == {
        "finance.query.name": "order_queue",
        "db.system.name": "redis",
        "db.system": "redis",
        "db.operation.name": "BATCH LLEN",
        "db.operation.batch.size": 3,
        "db.query.summary": "BATCH LLEN order_queue",
        "db.response.returned_rows": 3,
    }
    # MGET is one command over many keys, not a batch.
    age = children["market_data_age"]
    assert age.name == "MGET market_data_age"
    assert age.attributes is not None
    assert "db.operation.batch.size" not in age.attributes
    assert age.attributes["db.response.returned_rows"] == len(PROVIDERS)


def test_a_query_that_times_out_is_an_error_span_with_its_exception(
    database: Database, start_exporter: StartExporter, write_config: Callable[[str], Path]
) -> None:
    provider, spans = recording("revenue")
    config = write_config("queries:\n  refunds:\n    timeout_seconds: 0.5\n")
    exporter = start_exporter(
        "revenue", database.exporter_url, None, config_file=config, tracer_provider=provider
    )
    with psycopg.connect(database.admin_url) as locker, locker.transaction():
        locker.execute("LOCK TABLE refunds IN ACCESS EXCLUSIVE MODE")
        scrape(exporter)

    root, children = tree(spans.get_finished_spans())
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes is not None
    assert root.attributes["finance.refresh.queries_failed"] == 1
    refunds = children.pop("refunds")
    assert refunds.status.status_code == StatusCode.ERROR
    assert refunds.status.description == "query cancelled after 500 ms"
    assert refunds.attributes is not None
    assert refunds.attributes["error.type"] == "timeout"
    assert refunds.attributes["db.response.status_code"] == "57014"  # query_canceled
    assert exception_types(refunds) == ["finance_exporter.errors.SourceTimeoutError"]
    assert {name: span.status.status_code for name, span in children.items()} == dict.fromkeys(
        children, StatusCode.UNSET
    )


def test_postgres_down_fails_the_first_query_and_marks_the_rest_not_run(
    start_exporter: StartExporter,
) -> None:
    provider, spans = recording("revenue")
    nowhere = f"postgresql://finance_exporter:x@127.0.0.1:{free_port()}/none"
    exporter = start_exporter("revenue", nowhere, None, tracer_provider=provider)

    scrape(exporter)

    root, children = tree(spans.get_finished_spans())
    # The incremental queries wait for their first fold (backfill.py): not run, not failed.
    waiting = [query.name for query in DOMAINS["revenue"] if query.incremental]
    first, *rest = [query.name for query in DOMAINS["revenue"] if not query.incremental]
    assert root.attributes is not None
    assert root.attributes["finance.refresh.queries_failed"] == 1 + len(rest)
    for name in waiting:
        assert (children[name].status.status_code, children[name].events) == (StatusCode.UNSET, ())
    assert exception_types(children[first]) == ["finance_exporter.errors.SourceUnavailableError"]
    assert children[first].attributes is not None
    assert children[first].attributes["error.type"] == "unavailable"
    for name in rest:
        span = children[name]
        assert span.attributes is not None
        assert (span.status.status_code, span.status.description) == (
            StatusCode.ERROR,
            "not run: unavailable",
        )
        assert span.attributes["error.type"] == "unavailable"
        assert span.events == ()


def test_without_an_endpoint_no_tracer_provider_is_installed(
    database: Database, start_exporter: StartExporter
) -> None:
    exporter = start_exporter("revenue", database.exporter_url, None)
    scrape(exporter)
    assert exporter.tracer_provider is None


def test_an_endpoint_that_is_not_a_url_is_a_config_error() -> None:
    environ = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", ENDPOINT: "jaeger:4318"}
    with pytest.raises(ConfigError) as raised:
        load_settings(Options(exporter="revenue", environ=environ))
    assert [str(problem) for problem in raised.value.details] == [
        "<env>: OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL, got 'jaeger:4318'"
    ]


# ---- delivery over OTLP/HTTP -----------------------------------------------------------------


@dataclass
class Receiver:
    """An OTLP/HTTP trace receiver on loopback that keeps every request it is sent."""

    url: str
    posts: list[tuple[str, str, bytes]] = field(default_factory=list)

    def requests(self) -> list[ExportTraceServiceRequest]:
        decoded = []
        for _, _, body in self.posts:
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
            decoded.append(message)
        return decoded


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    posts: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            posts.append((self.path, self.headers.get("Content-Type", ""), body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(url=f"http://127.0.0.1:{server.server_address[1]}", posts=posts)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_with_an_endpoint_the_refresh_spans_reach_an_otlp_http_receiver(
    database: Database, receiver: Receiver, start_exporter: StartExporter
) -> None:
    exporter = start_exporter(
        "revenue", database.exporter_url, None, environ={ENDPOINT: receiver.url + "/"}
    )
    scrape(exporter)
    assert exporter.tracer_provider is not None
    assert exporter.tracer_provider.force_flush()

    assert {(path, kind) for path, kind, _ in receiver.posts} == {
        ("/v1/traces", "application/x-protobuf")
    }
    names: list[str] = []
    services: set[str] = set()
    for message in receiver.requests():
        for resource_spans in message.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            services.add(attributes["service.name"])
            names += [span.name for scoped in resource_spans.scope_spans for span in scoped.spans]
    assert services == {"finance-exporter-revenue"}
    assert sorted(names) == sorted(
        ["refresh revenue"] + [f"SELECT {query.name}" for query in DOMAINS["revenue"]]
    )


def test_a_collector_that_never_answers_slows_neither_scrapes_nor_shutdown(
    database: Database,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Connections land in the backlog and nothing is ever read or answered.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        exporter = start_exporter(
            "revenue",
            database.exporter_url,
            None,
            config_file=write_config("min_interval_seconds: 0.001\n"),
            environ={ENDPOINT: endpoint},
        )
        scrape(exporter)  # connects: the timings below are about tracing only
        provider = exporter.tracer_provider
        assert provider is not None
        # An export blocked on the silent collector, on the processor's own thread.
        flushing = threading.Thread(target=provider.force_flush, daemon=True)
        flushing.start()
        started = time.monotonic()
        for _ in range(5):
            scrape(exporter)
        assert time.monotonic() - started < 2.0
        assert flushing.is_alive()  # the export is still waiting for an answer

        caplog.set_level(logging.WARNING, logger="finance_exporter.tracing")
        started = time.monotonic()
        assert tracing.shutdown(provider, timeout_seconds=1.0) is False
        assert time.monotonic() - started < 1.5
        assert [r.getMessage() for r in caplog.records if r.name == "finance_exporter.tracing"] == [
            "traces not flushed"
        ]
    finally:
        silent.close()


def test_sigterm_exits_within_the_flush_budget_while_the_collector_is_silent(
    database: Database,
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database.exporter_url,
        ENDPOINT: f"http://127.0.0.1:{silent.getsockname()[1]}",
        # The SDK's batch delay (5 s by default), so the export starts within the test.
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    argv = [sys.executable, "-m", "finance_exporter", "revenue", "--listen", f"127.0.0.1:{port}"]
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        # poll every 0.1s, at most 20s, until it serves
        deadline = time.monotonic() + 20
        while True:
            try:
                assert fetch(f"http://127.0.0.1:{port}/metrics")[0] == 200
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        time.sleep(0.5)  # the refresh's spans are now on their way to the silent collector
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        silent.close()
    assert process.returncode == 0
    assert elapsed < tracing.SHUTDOWN_TIMEOUT_SECONDS + 1.5
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert [e["message"] for e in events if e["log.logger"] == "finance_exporter.tracing"] == [
        "traces not flushed"
    ]
