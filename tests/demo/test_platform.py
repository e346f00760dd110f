"""The demo platform under load: contract metrics, real writes, least privilege, outages.

One platform process and one burst of load serve most tests of this module (the `served`
fixture); the outage test runs its own platform against a Postgres it can stop.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from finance_demo.catalog import PROVIDERS
from finance_demo.load import LoadSettings, Tally, run_load
from finance_demo.load_plan import LoadPlan
from finance_demo.platform.app import SERVICES, Platform, PlatformSettings
from finance_demo.platform.datastores import PostgresPool
from finance_demo.platform.gateway import ROUTES
from finance_demo.platform.logs import EcsFormatter
from finance_demo.platform.overview import OVERVIEW_ROUTE, PARTS, WATCHLIST
from finance_demo.platform.valuation import close_days
from finance_exporter.domains.portfolio import AUM
from finance_stack.access import REDIS_PLATFORM_USER
from finance_stack.secrets import DERIVED, GENERATED, derive
from support.datastores import (
    StartExporter,
    create_redis_platform_user,
)
from support.exposition import by_label, parse, scrape
from support.platform import (
    PlatformProcess,
    free_port_range,
    platform_stores,
    request,
    start_platform,
)
from support.servers import PostgresServer, RedisServer, free_port
from support.stack import ENDPOINTS

REQUIRED_BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0}
# The services' route labels: the gateway's routes, and the reads its account overview makes.
TEMPLATES = {template for _, template, _ in (*ROUTES, *PARTS)} | {OVERVIEW_ROUTE, "unmatched"}
LOAD_SECONDS = 6.0
LOAD_RATE = 25.0


@dataclass(frozen=True)
class Served:
    """A platform that has served a burst of load: where it runs and what happened."""

    platform: PlatformProcess
    admin_url: str
    platform_url: str
    exporter_url: str
    redis_admin_url: str
    redis_platform_url: str
    tally: Tally


def _text(url: str, accept: str | None = None) -> str:
    headers = {"Accept": accept} if accept else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        body: str = r.read().decode()
        return body


@pytest.fixture(scope="module")
def served(
    postgres_server: PostgresServer,
    exporter_password: str,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    with platform_stores(postgres_server, exporter_password, redis_server) as stores:
        platform = start_platform(
            stores.platform_url, stores.redis_platform_url, tmp_path_factory.mktemp("p")
        )
        try:
            settings = LoadSettings(
                target=platform.gateway, rate=LOAD_RATE, seed=7, duration_seconds=LOAD_SECONDS
            )
            tally = run_load(settings, threading.Event())
            # One certain failed login: the mix's 3% may not come up in a short burst.
            body: dict[str, object] = {"email": "x@y", "password": "z"}
            request(platform.url("user-management", "/v1/sessions"), body)
            yield Served(
                platform=platform,
                admin_url=stores.admin_url,
                platform_url=stores.platform_url,
                exporter_url=stores.exporter_url,
                redis_admin_url=stores.redis_admin_url,
                redis_platform_url=stores.redis_platform_url,
                tally=tally,
            )
        finally:
            assert platform.stop() == 0, platform.log.read_text()[-3000:]


def _scalar(url: str, sql: str) -> object:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql.encode()).fetchone()
    assert row is not None
    return row[0]


# ---- the instrumentation contract ------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_exposes_the_contract_with_its_own_service_label(
    served: Served, service: str
) -> None:
    families = {
        f.name: f
        for f in text_string_to_metric_families(_text(served.platform.url(service, "/metrics")))
    }
    requests = families["http_requests"]
    assert requests.type == "counter"
    assert {tuple(sorted(s.labels)) for s in requests.samples} == {
        ("code", "method", "route", "service")
    }
    assert {s.labels["service"] for s in requests.samples} == {service}
    duration = families["http_request_duration_seconds"]
    assert duration.type == "histogram"
    buckets = [s for s in duration.samples if s.name.endswith("_bucket")]
    assert {tuple(sorted(s.labels)) for s in buckets} == {("le", "method", "route", "service")}
    assert {float(s.labels["le"]) for s in buckets} == REQUIRED_BUCKETS | {float("inf")}
    start = families["process_start_time_seconds"].samples
    assert [(s.labels, s.value > time.time() - 600) for s in start] == [
        ({"service": service}, True)
    ]
    in_flight = families["http_requests_in_flight"].samples
    assert [s.labels for s in in_flight] == [{"service": service}]
    assert ("auth_attempts" in families) == (service == "user-management")
    assert not any(name.endswith("_created") for name in families)


def test_logins_are_counted_by_result(served: Served) -> None:
    samples = scrape_url(served.platform.url("user-management", "/metrics"))
    attempts = by_label(samples, "auth_attempts_total", "service", "result")
    assert set(attempts) == {("user-management", "success"), ("user-management", "failure")}
    assert attempts[("user-management", "success")] > 0
    assert attempts[("user-management", "failure")] >= 1


def scrape_url(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    return parse(_text(url))


def test_route_labels_are_templates_and_every_service_served_traffic(served: Served) -> None:
    for service in SERVICES:
        samples = scrape_url(served.platform.url(service, "/metrics"))
        counted = by_label(samples, "http_requests_total", "route", "method", "code")
        assert counted, service
        assert {route for route, _, _ in counted} <= TEMPLATES, service
    gateway = by_label(
        scrape_url(served.platform.url("api-gateway", "/metrics")), "http_requests_total", "route"
    )
    assert ("/v1/orders/{id}",) in gateway and ("/v1/quotes/{symbol}",) in gateway


@pytest.mark.parametrize("service", SERVICES)
def test_latency_histogram_carries_trace_id_exemplars_in_openmetrics(
    served: Served, service: str
) -> None:
    body = _text(served.platform.url(service, "/metrics"), "application/openmetrics-text")
    exemplars = re.findall(
        # Label values are quoted and may hold braces: route="/v1/quotes/{symbol}".
        rf'^http_request_duration_seconds_bucket\{{(?:[^"}}]|"[^"]*")*service="{service}"'
        r'(?:[^"}]|"[^"]*")*\} \S+ '
        r'# \{trace_id="([0-9a-f]{32})"\} \S+',
        body,
        re.MULTILINE,
    )
    assert exemplars, body[:2000]
    assert body.rstrip().endswith("# EOF")


def test_prometheus_stores_the_exemplars_of_every_service(served: Served, tmp_path: Path) -> None:
    """The pinned Prometheus with exemplar storage scrapes the five services (OpenMetrics is
    negotiated) while requests flow, and keeps trace-id exemplars for each of them."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus not found: tests/run.sh builds it (pinned-go.sh)"
    port = free_port()
    targets = [f"127.0.0.1:{served.platform.base_port + n}" for n in range(len(SERVICES))]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "platform", "static_configs": [{"targets": targets}]}
                ],
            }
        )
    )
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    argv += [f"--web.listen-address=127.0.0.1:{port}", "--enable-feature=exemplar-storage"]
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    stop = threading.Event()
    load = threading.Thread(
        target=run_load,
        args=(LoadSettings(target=served.platform.gateway, rate=20, seed=11), stop),
        daemon=True,
    )
    load.start()
    try:
        found: set[str] = set()
        deadline = time.monotonic() + 30
        while found != set(SERVICES) and time.monotonic() < deadline:
            time.sleep(1)
            now = time.time()
            query = urllib.parse.urlencode(
                {"query": "http_request_duration_seconds_bucket", "start": now - 60, "end": now}
            )
            try:
                answer = json.loads(
                    _text(f"http://127.0.0.1:{port}/api/v1/query_exemplars?{query}")
                )
            except OSError:
                continue
            for entry in answer["data"]:
                if all(
                    re.fullmatch(r"[0-9a-f]{32}", e["labels"]["trace_id"])
                    for e in entry["exemplars"]
                ):
                    found.add(entry["seriesLabels"]["service"])
        assert found == set(SERVICES), log.read_text()[-3000:]
    finally:
        stop.set()
        load.join(timeout=10)
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.parametrize("service", SERVICES)
def test_exposition_passes_promtool_check_metrics(served: Served, service: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: tests/run.sh builds it (pinned-go.sh)"
    body = _text(served.platform.url(service, "/metrics"))
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


# ---- the load ---------------------------------------------------------------------------------


def test_load_is_served_with_no_server_errors_and_few_client_errors(served: Served) -> None:
    fields = served.tally.fields()
    classes = fields["status_classes"]
    assert isinstance(classes, dict)
    assert set(classes) <= {"2xx", "4xx"}, classes
    total = sum(classes.values())
    assert total >= LOAD_RATE * LOAD_SECONDS * 0.5
    assert classes.get("4xx", 0) / total < 0.12


def test_load_plan_is_deterministic_for_a_seed() -> None:
    def sequence(seed: int) -> list[tuple[str, str]]:
        plan = LoadPlan(seed=seed)
        out = []
        for n in range(200):
            planned = plan.next()
            out.append((planned.kind, planned.path))
            if planned.kind == "signup":
                body = {"user_id": n + 1, "email": f"u{n}@x", "portfolio_id": n + 1}
                plan.learn(planned, 201, {**body, "subscription_id": n + 1})
        return out

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)
    assert {kind for kind, _ in sequence(7)} >= {"order", "payment", "signal", "login", "quote"}


def test_load_plan_sends_a_few_overviews_of_customers_it_signed_up() -> None:
    plan = LoadPlan(seed=7)
    kinds: Counter[str] = Counter()
    signed_up: set[int] = set()
    for n in range(1, 5001):
        planned = plan.next()
        kinds[planned.kind] += 1
        if planned.kind == "overview":
            assert planned.route == OVERVIEW_ROUTE
            user_id = int(planned.path.split("/")[3])
            assert planned.path == f"/v1/accounts/{user_id}/overview" and user_id in signed_up
        if planned.kind == "signup":
            body = {"user_id": n, "email": f"u{n}@x", "portfolio_id": n, "subscription_id": n}
            plan.learn(planned, 201, body)
            signed_up.add(n)
    assert 0.005 <= kinds["overview"] / 5000 <= 0.02, kinds


def test_load_command_stops_cleanly_on_sigterm(served: Served, tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    argv = [sys.executable, "-m", "finance_demo.cli", "load", "--target", served.platform.gateway]
    argv += ["--rate", "20", "--heartbeat", str(heartbeat), "--report-seconds", "0.5"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    process.terminate()
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["message"] for line in lines][-1] == "load stopped"
    assert "load progress" in {line["message"] for line in lines}
    assert lines[-1]["requests"] > 10 and lines[-1]["service.name"] == "demo-load"
    assert heartbeat.stat().st_mtime > time.time() - 10


# ---- real work on the datastores ---------------------------------------------------------------


def test_payments_reach_a_final_status_and_some_are_refunded_or_declined(served: Served) -> None:
    with psycopg.connect(served.admin_url, autocommit=True) as conn:
        statuses = dict(
            conn.execute(
                "SELECT status, count(*) FROM payments WHERE final_xid IS NOT NULL GROUP BY 1"
            ).fetchall()
        )
        pending = conn.execute("SELECT count(*) FROM payments WHERE status = 'pending'").fetchone()
    assert statuses.get("succeeded", 0) > 0
    assert pending == (0,)


def test_signals_orders_and_trades_are_written_and_made_final(served: Served) -> None:
    signals = _scalar(served.admin_url, "SELECT count(*) FROM signals")
    final_orders = _scalar(
        served.admin_url,
        "SELECT count(*) FROM orders WHERE final_xid IS NOT NULL AND status <> 'pending'",
    )
    trades = _scalar(served.admin_url, "SELECT count(*) FROM trades")
    users = _scalar(served.admin_url, "SELECT count(*) FROM users")
    assert isinstance(signals, int) and signals > 5
    assert isinstance(final_orders, int) and final_orders > 5
    assert isinstance(trades, int) and 0 < trades <= final_orders
    assert isinstance(users, int) and users > 0


def test_order_queues_and_active_signals_hold_what_is_still_open(served: Served) -> None:
    client = redis.Redis.from_url(served.redis_admin_url, decode_responses=True)
    queued = [
        int(i) for p in ("high", "normal", "low") for i in client.lrange(f"orders:queue:{p}", 0, -1)
    ]
    active = [int(i) for s in client.keys("signals:active:*") for i in client.smembers(s)]
    client.close()
    with psycopg.connect(served.admin_url, autocommit=True) as conn:
        queued_status = conn.execute(
            "SELECT DISTINCT status FROM orders WHERE id = ANY(%s)", (queued,)
        ).fetchall()
        active_status = conn.execute(
            "SELECT DISTINCT status FROM signals WHERE id = ANY(%s)", (active,)
        ).fetchall()
    assert active and {row[0] for row in active_status} == {"active"}
    assert {row[0] for row in queued_status} <= {"pending"}


def test_market_data_ticks_advance_in_the_keys_the_exporters_read(served: Served) -> None:
    client = redis.Redis.from_url(served.redis_admin_url, decode_responses=True)
    keys = [f"md:last_tick:{p}" for p in PROVIDERS]
    first = [float(v) for v in client.mget(keys)]
    time.sleep(1.6)
    second = [float(v) for v in client.mget(keys)]
    ticks = client.hgetall("md:ticks:binance")
    client.close()
    assert all(b > a for a, b in zip(first, second, strict=True))
    assert all(time.time() - stamp < 5 for stamp in second)
    assert set(ticks) == {"BTC-USD", "ETH-USD", "SOL-USD"}
    assert all(float(v.split("|")[0]) > 0 for v in ticks.values())


def test_revenue_exporter_counts_the_platform_payments(
    served: Served, start_exporter: StartExporter
) -> None:
    expected = dict(
        psycopg.connect(served.admin_url, autocommit=True)
        .execute(
            "SELECT status || '/' || method, count(*)::float FROM payments"
            " WHERE final_xid IS NOT NULL GROUP BY 1"
        )
        .fetchall()
    )
    exporter = start_exporter("revenue", served.exporter_url, None)
    payments = by_label(scrape(exporter), "finance_payments_total", "status", "method")
    assert {f"{s}/{m}": v for (s, m), v in payments.items() if v} == expected


# ---- least privilege ---------------------------------------------------------------------------


def test_end_of_day_close_values_every_portfolio_once(served: Served) -> None:
    """The trading service's daily close, run as the platform role over the portfolios the load
    opened: from a base day (written as admin), the next two days are closed; every portfolio
    gets one snapshot per day, its value follows the previous day's by that day's return, VaR95
    stays a fraction of value, a second run writes nothing, and the portfolio exporter's AUM
    query reads the last day."""
    base = datetime.now(UTC).date()
    with psycopg.connect(served.admin_url, autocommit=True) as conn:
        conn.execute("DELETE FROM portfolio_daily_snapshots")
        conn.execute(
            "INSERT INTO portfolio_daily_snapshots"
            " (portfolio_id, day, value_usd, daily_return, var95_usd)"
            " SELECT id, %s, 10000, 0, 200 FROM portfolios",
            (base,),
        )
    latest = base + timedelta(days=2)
    pool = PostgresPool(served.platform_url)
    try:
        closed = close_days(pool, latest + timedelta(days=1))
        again = close_days(pool, latest + timedelta(days=1))
    finally:
        pool.close()
    assert list(closed) == [base + timedelta(days=1), latest]
    assert again == {}
    with psycopg.connect(served.admin_url, autocommit=True) as conn:
        for day in (latest - timedelta(days=1), latest):
            counts = conn.execute(
                "SELECT count(*), count(DISTINCT portfolio_id) FROM portfolio_daily_snapshots"
                " WHERE day = %s",
                (day,),
            ).fetchone()
            portfolios = conn.execute(
                "SELECT count(*) FROM portfolios WHERE created_at < %s::date + 1", (day,)
            ).fetchone()
            assert counts is not None and portfolios is not None
            assert counts[0] == counts[1] == portfolios[0] > 0, (day, counts, portfolios)
        rows = conn.execute(
            "SELECT s.value_usd, s.daily_return, s.var95_usd, y.value_usd"
            " FROM portfolio_daily_snapshots AS s"
            " JOIN portfolio_daily_snapshots AS y ON y.portfolio_id = s.portfolio_id"
            " AND y.day = s.day - 1 WHERE s.day = %s",
            (latest,),
        ).fetchall()
        assert rows
        for value, ret, var95, previous in rows:
            assert abs(ret) <= 0.2
            assert abs(float(value) - float(previous) * (1 + ret)) <= 0.01
            assert 0 < float(var95) < float(value) * 0.2
        aum = conn.execute(AUM.sql.encode()).fetchall()
        total = conn.execute(
            "SELECT sum(value_usd) FROM portfolio_daily_snapshots WHERE day = %s", (latest,)
        ).fetchone()
    assert total is not None
    assert sum(value for _, value in aum) == total[0]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM payments",
        "TRUNCATE orders",
        "CREATE TABLE intruder (id int)",
        "UPDATE payments SET amount = 0",
        "UPDATE orders SET final_xid = NULL",
        "DROP TABLE refunds",
        "UPDATE model_evaluations SET accuracy = 1",
        "DELETE FROM model_evaluations",
    ],
)
def test_platform_role_cannot_delete_truncate_or_change_the_schema(
    served: Served, statement: str
) -> None:
    with psycopg.connect(served.platform_url) as conn:
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.WrongObjectType)):
            conn.execute(statement.encode())


def test_platform_redis_user_is_limited_to_its_key_families(served: Served) -> None:
    client = redis.Redis.from_url(served.redis_platform_url, decode_responses=True)
    try:
        client.set("md:last_tick:test", "1")
        for action in (
            lambda: client.set("sessions:1", "x"),
            lambda: client.get("md:last_tick:polygon"),
            lambda: client.delete("orders:queue:high"),
            lambda: client.keys("*"),
            lambda: client.flushall(),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                action()
    finally:
        client.close()


# ---- logs ---------------------------------------------------------------------------------------


def test_logs_are_ecs_json_and_one_trace_spans_gateway_and_service(served: Served) -> None:
    lines = served.platform.log_lines()
    served_lines = [line for line in lines if line["message"] == "request served"]
    assert served_lines
    for line in served_lines:
        assert {"@timestamp", "log.level", "service.name", "message"} <= set(line)
        assert re.fullmatch(r"[0-9a-f]{32}", str(line["trace.id"]))
        assert re.fullmatch(r"[0-9a-f]{16}", str(line["span.id"]))
    by_trace: dict[str, set[str]] = {}
    for line in served_lines:
        by_trace.setdefault(str(line["trace.id"]), set()).add(str(line["service.name"]))
    assert any(services >= {"api-gateway", "trading"} for services in by_trace.values())
    assert {s for services in by_trace.values() for s in services} == set(SERVICES)


# ---- one request through all five services ---------------------------------------------------


class _Lines(logging.Handler):
    """Keeps every formatted record."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def _trace_of(spans: InMemorySpanExporter, route: str) -> list[ReadableSpan]:
    """Every span of the trace whose gateway SERVER span is `route`, once all have ended."""
    # poll every 0.05s, at most 5s: a span ends just after its answer is sent
    deadline = time.monotonic() + 5
    while True:
        finished = spans.get_finished_spans()
        roots = [s for s in finished if s.name == f"GET {route}" and s.kind == SpanKind.SERVER]
        trace = []
        if len(roots) == 1 and roots[0].context is not None:
            trace_id = roots[0].context.trace_id
            trace = [s for s in finished if s.context and s.context.trace_id == trace_id]
        # the gateway's SERVER span, its six CLIENT spans, and one SERVER span for each
        if len(trace) == 13 or time.monotonic() > deadline:
            return trace
        time.sleep(0.05)


def test_an_account_overview_is_one_trace_through_all_five_services(served: Served) -> None:
    """An in-process platform (same datastores as `served`) records its spans in memory and its
    request log lines as the ECS formatter writes them."""
    spans = InMemorySpanExporter()
    base_port = free_port_range(len(SERVICES))
    settings = PlatformSettings(
        served.platform_url, served.redis_platform_url, host="127.0.0.1", base_port=base_port
    )
    platform = Platform(settings, SimpleSpanProcessor(spans))
    logs = _Lines()
    logs.setFormatter(EcsFormatter())
    http_logger = logging.getLogger("finance_demo.platform.http")
    level = http_logger.level
    http_logger.addHandler(logs)
    http_logger.setLevel(logging.INFO)
    platform.start()
    gateway = f"http://127.0.0.1:{base_port}"
    try:
        signup = {"tier": "pro", "billing_period": "monthly", "currency": "EUR"}
        status, created = request(gateway + "/v1/users", {**signup, "account_type": "joint"})
        assert status == 201, created
        status, overview = request(f"{gateway}/v1/accounts/{created['user_id']}/overview")
        trace = _trace_of(spans, OVERVIEW_ROUTE)
    finally:
        platform.stop()
        http_logger.removeHandler(logs)
        http_logger.setLevel(level)

    assert status == 200, overview
    user, portfolios = overview["user"], overview["portfolios"]
    assert isinstance(user, dict) and isinstance(portfolios, dict)
    assert (overview["account_id"], user["tier"], user["status"]) == (
        created["user_id"],
        "pro",
        "active",
    )
    assert user["subscription"] == {
        "id": created["subscription_id"],
        "plan": "pro",
        "billing_period": "monthly",
        "status": "active",
    }
    assert overview["payments"] == {
        "user_id": created["user_id"],
        "by_status": {},
        "paid": {},
        "latest": None,
    }
    assert portfolios["portfolios"] == [{"id": created["portfolio_id"], "account_type": "joint"}]
    assert portfolios["open_positions"] == [] and portfolios["orders"] == {}
    quotes = overview["quotes"]
    assert isinstance(quotes, list)
    assert [quote["symbol"] for quote in quotes] == list(WATCHLIST)

    service_of = {id(s): str(s.resource.attributes["service.name"]) for s in trace}
    assert Counter(service_of.values()) == {
        "api-gateway": 7,
        "user-management": 1,
        "payment": 1,
        "trading": 1,
        "market-data": len(WATCHLIST),
    }
    (root,) = [s for s in trace if s.kind == SpanKind.SERVER and service_of[id(s)] == "api-gateway"]
    assert root.context is not None and root.parent is None
    clients = sorted(
        (s for s in trace if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    assert [(c.name, (c.attributes or {})["peer.service"]) for c in clients] == [
        (f"{method} {template}", upstream)
        for method, template, upstream in [*PARTS[:3]] + [PARTS[3]] * len(WATCHLIST)
    ]
    by_id = {c.context.span_id: c for c in clients if c.context is not None}
    for client in clients:
        assert client.parent is not None and client.parent.span_id == root.context.span_id
        assert service_of[id(client)] == "api-gateway"
    upstream_servers = [s for s in trace if s.kind == SpanKind.SERVER and s is not root]
    assert len(upstream_servers) == len(clients)
    for server in upstream_servers:
        assert server.parent is not None and server.parent.is_remote
        caller = by_id[server.parent.span_id]
        assert (caller.attributes or {})["peer.service"] == service_of[id(server)]

    trace_id = format(root.context.trace_id, "032x")
    served_lines = [line for line in logs.lines if line["message"] == "request served"]
    (gateway_line,) = [line for line in served_lines if line["http.route"] == OVERVIEW_ROUTE]
    assert gateway_line["service.name"] == "api-gateway"
    assert gateway_line["http.response.status_code"] == 200
    assert gateway_line["trace.id"] == trace_id
    assert gateway_line["span.id"] == format(root.context.span_id, "016x")
    in_trace = {str(line["service.name"]) for line in served_lines if line["trace.id"] == trace_id}
    assert in_trace == set(SERVICES)


def test_an_overview_of_an_unknown_account_is_a_404(served: Served) -> None:
    status, body = request(served.platform.gateway + "/v1/accounts/9000000000000/overview")
    assert (status, body) == (404, {"error": "no account 9000000000000"})


# ---- a datastore outage ----------------------------------------------------------------------


def test_postgres_outage_answers_503_and_the_platform_recovers(
    own_postgres: tuple[PostgresServer, str], redis_server: RedisServer, tmp_path: Path
) -> None:
    server, url = own_postgres
    admin = redis.Redis.from_url(redis_server.url())
    password = secrets.token_urlsafe(16)
    create_redis_platform_user(admin, password)
    admin.close()
    platform = start_platform(url, redis_server.url(REDIS_PLATFORM_USER, password), tmp_path)
    signup = {"tier": "pro", "billing_period": "monthly", "currency": "USD"}
    signup["account_type"] = "individual"
    try:
        assert request(platform.gateway + "/v1/users", signup)[0] == 201
        server.stop()
        outage = [request(platform.gateway + "/v1/users", signup)[0] for _ in range(3)]
        assert outage == [503, 503, 503]
        assert platform.process.poll() is None
        with urllib.request.urlopen(platform.url("payment", "/healthz"), timeout=5) as health:
            assert health.status == 200
        for service in ("api-gateway", "user-management"):
            samples = scrape_url(platform.url(service, "/metrics"))
            codes = by_label(samples, "http_requests_total", "route", "code")
            assert codes[("/v1/users", "503")] == 3, service
        server.start()
        # poll every 0.2s, at most 20s: the next request connects afresh
        deadline = time.monotonic() + 20
        status = 0
        while time.monotonic() < deadline:
            status = request(platform.gateway + "/v1/users", signup)[0]
            if status == 201:
                break
            time.sleep(0.2)
        assert status == 201
        events = [
            (line["message"], line.get("datastore"))
            for line in platform.log_lines()
            if line["message"].startswith("datastore")
        ]
        assert ("datastore down", "postgres") in events
        assert ("datastore recovered", "postgres") in events
    finally:
        assert platform.stop() == 0


def test_healthz_answers_without_any_datastore(tmp_path: Path) -> None:
    # Nothing listens on these URLs: /healthz must not care, a real route must answer 503.
    platform = start_platform(
        "postgresql://nobody:x@127.0.0.1:1/none", "redis://nobody:x@127.0.0.1:1/0", tmp_path
    )
    try:
        for service in SERVICES:
            with urllib.request.urlopen(platform.url(service, "/healthz"), timeout=5) as r:
                assert r.status == 200
        assert request(platform.gateway + "/v1/quotes/AAPL")[0] == 503
        assert request(platform.gateway + "/v1/orders/1")[0] == 503
        assert request(platform.gateway + "/v1/nowhere")[0] == 404
    finally:
        assert platform.stop() == 0


# ---- the stack's secrets ----------------------------------------------------------------------


def test_platform_secrets_point_at_the_demo_datastores_even_with_external_urls() -> None:
    values = {name: f"pw-{name}" for name in GENERATED}
    external = {"DATABASE_URL": "postgresql://u:p@db.internal/x", "REDIS_URL": "redis://r/0"}
    derived = derive(values, external, ENDPOINTS)
    assert derived["platform_database_url"] == (
        "postgresql://finance_platform:pw-platform_pg_password@demo-postgres:5432/platform"
    )
    assert derived["platform_redis_url"] == (
        "redis://finance_platform:pw-platform_redis_password@demo-redis:6379/0"
    )
    assert derived["exporter_database_url"] == external["DATABASE_URL"]
    acl = [line for line in derived["redis_acl"].splitlines() if " finance_platform " in line]
    assert len(acl) == 1 and "~* " not in acl[0] and "+@all" not in acl[0]
    assert "pw-platform_redis_password" not in derived["redis_acl"]
    assert {GENERATED["platform_pg_password"], DERIVED["platform_database_url"]} == {10001}
