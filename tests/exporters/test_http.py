"""HTTP endpoints: /metrics within the scrape deadline, /healthz without touching a datastore."""

from __future__ import annotations

import gzip
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal

import pytest

from finance_exporter.domains import DOMAINS
from finance_exporter.http import SCRAPE_TIMEOUT_HEADER, WORKERS, ExporterServer
from finance_exporter.snapshot import QueryState, Refresher, Snapshot
from finance_exporter.spec import MetricSpec, QuerySpec
from support.clock import FakeClock
from support.datastores import Database, RedisDb, StartExporter
from support.exposition import by_label, parse

DEFAULT_TIMEOUT_SECONDS = 10.0
OFFSET_SECONDS = 0.5
USERS = QuerySpec(
    name="users",
    source="postgres",
    metric=MetricSpec(
        name="finance_users", kind="gauge", help="Users.", labels=("tier",), max_series=2
    ),
)


class RecordingLoader:
    """Serves one fixed value and records the deadline of every load."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.deadlines: list[float] = []

    def load(self, previous: Snapshot, deadline: float) -> Snapshot:
        self.deadlines.append(deadline)
        state = replace(
            previous.queries[USERS.name],
            values={("pro",): (Decimal("4"),)},
            loaded_at=self.clock.time(),
            last_success=True,
            runs_total=previous.queries[USERS.name].runs_total + 1,
        )
        return Snapshot(
            taken_at=self.clock.monotonic(),
            queries={USERS.name: state},
            source_up={"postgres": True},
        )


class Served:
    """A running ExporterServer on a free loopback port, with its loader and clock."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.loader = RecordingLoader(self.clock)
        initial = Snapshot.empty({USERS.name: QueryState(spec=USERS)})
        refresher = Refresher(self.loader, initial, min_interval_seconds=30.0, clock=self.clock)
        self.server = ExporterServer(
            ("127.0.0.1", 0), refresher, self.clock, DEFAULT_TIMEOUT_SECONDS, OFFSET_SECONDS
        )

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
        host, port = self.server.server_address[:2]
        request = urllib.request.Request(f"http://{host!s}:{port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.headers["Content-Type"], err.read().decode()


@pytest.fixture
def served() -> Iterator[Served]:
    running = Served()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    yield running
    running.server.shutdown()
    thread.join(timeout=10)
    running.server.server_close()


def test_healthz_answers_without_loading_a_snapshot(served: Served) -> None:
    assert served.get("/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
    assert served.loader.deadlines == []


def test_unknown_path_is_404_and_loads_nothing(served: Served) -> None:
    assert served.get("/nope") == (404, "text/plain; charset=utf-8", "not found\n")
    status, content_type, body = served.get("/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    assert '<a href="/metrics">' in body
    assert served.loader.deadlines == []


def test_metrics_serves_the_refreshed_snapshot_within_the_header_deadline(
    served: Served,
) -> None:
    status, content_type, body = served.get("/metrics", {SCRAPE_TIMEOUT_HEADER: "4"})
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    samples = parse(body)
    assert by_label(samples, "finance_users", "tier") == {("pro",): 4.0}
    assert by_label(samples, "finance_exporter_up", "source") == {("postgres",): 1.0}
    assert served.loader.deadlines == [served.clock.monotonic() + 4 - OFFSET_SECONDS]


def test_metrics_negotiates_openmetrics(served: Served) -> None:
    status, content_type, body = served.get(
        "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


@pytest.mark.parametrize(
    ("header", "timeout_seconds"),
    [
        (None, DEFAULT_TIMEOUT_SECONDS),
        ("", DEFAULT_TIMEOUT_SECONDS),
        ("3", 3.0),
        ("60", DEFAULT_TIMEOUT_SECONDS),  # capped by the configured timeout
        ("soon", DEFAULT_TIMEOUT_SECONDS),  # not a number: the configured timeout
        ("0.2", OFFSET_SECONDS),  # shorter than the offset: no time at all
    ],
)
def test_deadline_is_the_scrape_timeout_minus_the_offset(
    served: Served, header: str | None, timeout_seconds: float
) -> None:
    expected = served.clock.monotonic() + timeout_seconds - OFFSET_SECONDS
    assert served.server.deadline(header) == expected


def test_concurrent_scrapers_queue_instead_of_being_dropped() -> None:
    """While the server is busy (here: not accepting yet), the kernel queues up to the listen
    backlog; with socketserver's default of 5 the seventh connection's SYN is dropped and its
    connect waits for a retransmit (1 s, then 3, then 7). 64 connects, none refused or delayed,
    and each is then answered."""
    server = Served().server
    host, port = server.server_address[:2]
    clients = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    try:
        for _ in range(64):
            client = socket.create_connection((str(host), port), timeout=0.5)
            clients.append(client)
        thread.start()
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answers = [client.recv(64).split(b"\r\n", 1)[0] for client in clients]
        assert answers == [b"HTTP/1.0 200 OK"] * 64
    finally:
        for client in clients:
            client.close()
        if thread.is_alive():
            server.shutdown()
        server.server_close()


def test_metrics_is_gzipped_when_the_scraper_accepts_it(served: Served) -> None:
    host, port = served.server.server_address[:2]
    plain = served.get("/metrics")[2]
    request = urllib.request.Request(
        f"http://{host!s}:{port}/metrics", headers={"Accept-Encoding": "gzip"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert gzip.decompress(response.read()).decode() == plain


SCRAPERS = 32


def _listen_overflows() -> int:
    """TcpExt ListenOverflows of this network namespace: SYNs dropped on a full backlog."""
    with open("/proc/net/netstat", encoding="ascii") as netstat:
        lines = [line.split() for line in netstat if line.startswith("TcpExt:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("ListenOverflows")])


def _scrape_raw(host: str, port: int) -> bytes:
    # A refused or dropped SYN would be retried after 1 s: a 0.5 s connect timeout fails instead.
    with socket.create_connection((host, port), timeout=0.5) as client:
        client.settimeout(30)
        client.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_32_concurrent_scrapes_share_one_refresh_on_a_bounded_pool(
    database: Database, redis_db: RedisDb, start_exporter: StartExporter
) -> None:
    """32 scrapers at once on a fresh exporter (WORKERS threads): every connection is accepted
    first time, every scrape is answered from the one refresh, rendered once."""
    exporter = start_exporter("revenue", database.exporter_url, redis_db.exporter_url)
    host, port = exporter.server.server_address[:2]
    overflows = _listen_overflows()
    barrier = threading.Barrier(SCRAPERS)
    answers: list[bytes] = []
    errors: list[BaseException] = []

    def scraper() -> None:
        try:
            barrier.wait(timeout=10)
            answers.append(_scrape_raw(str(host), port))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=scraper) for _ in range(SCRAPERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert _listen_overflows() == overflows
    heads, bodies = zip(*(answer.split(b"\r\n\r\n", 1) for answer in answers), strict=True)
    assert {head.split(b"\r\n", 1)[0] for head in heads} == {b"HTTP/1.0 200 OK"}
    runs = [
        by_label(parse(body.decode()), "finance_exporter_query_runs_total", "query")
        for body in bodies
    ]
    assert runs == [dict.fromkeys(((q.name,) for q in DOMAINS["revenue"]), 1.0)] * SCRAPERS
    assert exporter.server.exposition.renders == 1
    http_threads = [t for t in threading.enumerate() if t.name.startswith("http")]
    assert 0 < len(http_threads) <= WORKERS
