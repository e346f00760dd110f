"""The platform's fault knobs against the real platform code and real datastores: each knob makes
the source its alert reads say so (the request counter and histogram, the payments table, the
feed's tick keys, the model evaluations), /-/faults answers loopback only, and the knobs start
off.

One in-process platform serves the module; every test leaves its knobs off again.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import redis

from finance_demo.platform.app import SERVICES, Platform, PlatformSettings
from finance_demo.platform.datastores import PostgresPool
from finance_demo.platform.evaluation import evaluate_models
from finance_demo.platform.faults import (
    MAX_ADDED_LATENCY_MS,
    FaultError,
    Faults,
    knobs_of,
    parse,
)
from finance_demo.platform.http import FAULTS_PATH, INJECTED_ERROR, is_loopback
from finance_demo.platform.payment import PROVIDER_ERROR
from support.datastores import StartExporter
from support.exposition import by_label, scrape
from support.exposition import parse as parse_exposition
from support.platform import PlatformStores, free_port_range, platform_stores, request
from support.servers import PostgresServer, RedisServer

QUOTE = "/v1/quotes/BTC-USD"
QUOTE_ROUTE = "/v1/quotes/{symbol}"
SIGNUP: dict[str, object] = {
    "tier": "pro",
    "billing_period": "monthly",
    "currency": "USD",
    "account_type": "individual",
}


@dataclass(frozen=True)
class Running:
    """An in-process platform on loopback, and its datastores."""

    platform: Platform
    base_port: int
    stores: PlatformStores

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.base_port + SERVICES.index(service)}{path}"

    def put_faults(self, service: str, knobs: dict[str, object]) -> tuple[int, dict[str, object]]:
        return request(self.url(service, FAULTS_PATH), knobs, method="PUT")

    def count(self, service: str, route: str, code: str) -> float:
        samples = parse_exposition(_text(self.url(service, "/metrics")))
        return by_label(samples, "http_requests_total", "route", "code").get((route, code), 0.0)


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: str = response.read().decode()
        return body


def _start(stores: PlatformStores, host: str) -> tuple[Platform, int]:
    base_port = free_port_range(len(SERVICES))
    settings = PlatformSettings(
        stores.platform_url, stores.redis_platform_url, host=host, base_port=base_port
    )
    platform = Platform(settings)
    platform.start()
    return platform, base_port


@pytest.fixture(scope="module")
def stores(
    postgres_server: PostgresServer, exporter_password: str, redis_server: RedisServer
) -> Iterator[PlatformStores]:
    with platform_stores(postgres_server, exporter_password, redis_server) as fresh:
        yield fresh


@pytest.fixture(scope="module")
def running(stores: PlatformStores) -> Iterator[Running]:
    platform, base_port = _start(stores, "127.0.0.1")
    try:
        yield Running(platform, base_port, stores)
    finally:
        platform.stop()


@pytest.fixture(autouse=True)
def knobs_off_after(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test leaves every knob of the module's platform off."""
    yield
    if "running" in request.fixturenames:
        running: Running = request.getfixturevalue("running")
        for service in SERVICES:
            assert running.put_faults(service, {})[0] == 200


# ---- the knobs and their control -------------------------------------------------------------


def test_every_knob_is_off_at_start_and_each_service_lists_its_own(running: Running) -> None:
    answers = {s: request(running.url(s, FAULTS_PATH)) for s in SERVICES}
    common = {"error_ratio": 0.0, "added_latency_ms": 0}
    assert answers == {
        "api-gateway": (200, common),
        "payment": (200, {**common, "provider_failing": False}),
        "trading": (200, {**common, "signal_accuracy": None}),
        "market-data": (200, {**common, "feed_stalled": False}),
        "user-management": (200, common),
    }


def test_a_put_replaces_the_knobs_and_a_bad_one_is_refused_naming_it(running: Running) -> None:
    assert running.put_faults("payment", {"provider_failing": True, "error_ratio": 0.25}) == (
        200,
        {"error_ratio": 0.25, "added_latency_ms": 0, "provider_failing": True},
    )
    # A PUT names the whole state: what it leaves out is off.
    assert running.put_faults("payment", {"added_latency_ms": 5})[1] == {
        "error_ratio": 0.0,
        "added_latency_ms": 5,
        "provider_failing": False,
    }
    status, body = running.put_faults("trading", {"provider_failing": True, "error_ratio": 2})
    assert status == 400
    assert body["error"] == (
        "trading has no knob 'provider_failing'; error_ratio must be a number from 0 to 1, got 2"
        " (knobs of trading: error_ratio, added_latency_ms, signal_accuracy)"
    )
    assert request(running.url("trading", FAULTS_PATH))[1]["error_ratio"] == 0.0


@pytest.mark.parametrize(
    ("knobs", "problem"),
    [
        ({"error_ratio": True}, "error_ratio must be a number from 0 to 1, got True"),
        ({"error_ratio": -0.1}, "error_ratio must be a number from 0 to 1, got -0.1"),
        ({"added_latency_ms": 1.5}, "added_latency_ms must be a whole number of milliseconds"),
        (
            {"added_latency_ms": MAX_ADDED_LATENCY_MS + 1},
            f"from 0 to {MAX_ADDED_LATENCY_MS}, got {MAX_ADDED_LATENCY_MS + 1}",
        ),
        ({"signal_accuracy": "low"}, "signal_accuracy must be a number from 0 to 1 or null"),
        ({"feed_stalled": "yes"}, "trading has no knob 'feed_stalled'"),
    ],
)
def test_each_bad_knob_value_is_refused(knobs: dict[str, object], problem: str) -> None:
    with pytest.raises(FaultError) as raised:
        parse("trading", knobs)
    assert problem in str(raised.value)


def test_a_parsed_setting_holds_exactly_what_was_named() -> None:
    assert parse("trading", {"signal_accuracy": 0, "error_ratio": 1}) == Faults(
        error_ratio=1.0, signal_accuracy=0.0
    )
    assert parse("market-data", {}) == Faults()
    assert knobs_of("user-management") == ("error_ratio", "added_latency_ms")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("172.18.0.5", False),
        ("::ffff:10.0.0.1", False),
        ("fd00::2", False),
        ("not-an-address", False),
    ],
)
def test_only_loopback_peers_count_as_local(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _outward_address() -> str:
    """This machine's address on its default route (no packet is sent: UDP connect only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            return ""
        address: str = probe.getsockname()[0]
    return "" if is_loopback(address) else address


def test_the_control_endpoint_refuses_a_peer_that_is_not_loopback(stores: PlatformStores) -> None:
    address = _outward_address()
    if not address:
        pytest.skip("this machine has no address but loopback to connect from")
    platform, base_port = _start(stores, "0.0.0.0")
    port = base_port + SERVICES.index("payment")
    try:
        remote = f"http://{address}:{port}"
        assert request(f"{remote}{FAULTS_PATH}") == (
            403,
            {"error": f"{FAULTS_PATH} answers loopback peers only"},
        )
        put = request(f"{remote}{FAULTS_PATH}", {"provider_failing": True}, method="PUT")
        assert put[0] == 403
        assert platform.faults["payment"].current == Faults()
        # The same peer is served everything else, and loopback may change the knobs.
        assert request(f"{remote}/v1/payments/1")[0] == 404
        local = f"http://127.0.0.1:{port}{FAULTS_PATH}"
        assert request(local, {"provider_failing": True}, method="PUT")[0] == 200
        assert platform.faults["payment"].current == Faults(provider_failing=True)
    finally:
        platform.stop()


def test_a_restart_clears_the_knobs(stores: PlatformStores) -> None:
    platform, base_port = _start(stores, "127.0.0.1")
    url = f"http://127.0.0.1:{base_port + SERVICES.index('market-data')}{FAULTS_PATH}"
    try:
        assert request(url, {"feed_stalled": True}, method="PUT")[1]["feed_stalled"] is True
    finally:
        platform.stop()
    again, base_port = _start(stores, "127.0.0.1")
    try:
        url = f"http://127.0.0.1:{base_port + SERVICES.index('market-data')}{FAULTS_PATH}"
        assert request(url)[1]["feed_stalled"] is False
    finally:
        again.stop()


def test_the_fault_command_shows_sets_and_clears_a_services_knobs(running: Running) -> None:
    def fault(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "finance_demo.cli", "fault", *args]
        argv += ["--base-port", str(running.base_port)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)

    put = fault("payment", "--put", '{"provider_failing": true}')
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["provider_failing"] is True
    assert json.loads(fault("payment").stdout)["provider_failing"] is True
    assert running.platform.faults["payment"].current.provider_failing
    cleared = fault("payment", "--clear")
    assert json.loads(cleared.stdout) == json.loads(fault("payment").stdout)
    assert running.platform.faults["payment"].current == Faults()
    refused = fault("market-data", "--put", '{"signal_accuracy": 0}')
    assert refused.returncode == 2
    assert "market-data refused (400): " in refused.stderr
    assert "market-data has no knob 'signal_accuracy'" in refused.stderr
    assert fault("payment", "--put", "{oops").returncode == 2


# ---- what each knob does to the sources the alerts read ---------------------------------------


def test_a_full_error_ratio_answers_500_counted_as_5xx_by_that_service_only(
    running: Running,
) -> None:
    before = running.count("market-data", QUOTE_ROUTE, "500")
    gateway_before = running.count("api-gateway", QUOTE_ROUTE, "500")
    assert running.put_faults("market-data", {"error_ratio": 1})[0] == 200
    direct = [request(running.url("market-data", QUOTE)) for _ in range(5)]
    through_gateway = request(running.url("api-gateway", QUOTE))
    assert direct == [(500, {"error": INJECTED_ERROR})] * 5
    assert through_gateway == (500, {"error": INJECTED_ERROR})
    assert running.count("market-data", QUOTE_ROUTE, "500") == before + 6
    assert running.count("api-gateway", QUOTE_ROUTE, "500") == gateway_before + 1
    # Another service is untouched, and the knob's own endpoint is not a counted request.
    assert request(running.url("trading", "/v1/orders/1"))[0] == 404
    assert running.count("market-data", FAULTS_PATH, "200") == 0


def test_a_partial_error_ratio_fails_some_requests_and_serves_the_rest(running: Running) -> None:
    running.put_faults("market-data", {"error_ratio": 0.5})
    statuses = [request(running.url("market-data", QUOTE))[0] for _ in range(200)]
    # Binomial(200, 0.5) falls outside 60..140 with a probability under 1e-8.
    assert 60 <= statuses.count(500) <= 140
    assert statuses.count(500) + statuses.count(200) == 200


def test_added_latency_shows_in_the_duration_histogram(running: Running) -> None:
    def buckets() -> dict[str, float]:
        samples = parse_exposition(_text(running.url("market-data", "/metrics")))
        counts = by_label(samples, "http_request_duration_seconds_bucket", "route", "le")
        return {le: value for (route, le), value in counts.items() if route == QUOTE_ROUTE}

    request(running.url("market-data", QUOTE))  # the route's series exist from here on
    before = buckets()
    running.put_faults("market-data", {"added_latency_ms": 300})
    started = time.monotonic()
    for _ in range(3):
        assert request(running.url("market-data", QUOTE))[0] == 200
    assert time.monotonic() - started >= 0.9
    after = buckets()
    grown = {le: after[le] - before[le] for le in after}
    assert grown["0.25"] == 0 and grown["0.5"] == 3 and grown["+Inf"] == 3


def test_a_failing_provider_fails_payments_as_recorded_in_postgres_and_counted(
    running: Running, start_exporter: StartExporter
) -> None:
    status, user = request(running.url("user-management", "/v1/users"), SIGNUP)
    assert status == 201, user
    charge = {"subscription_id": user["subscription_id"], "method": "card", "source": "web"}
    running.put_faults("payment", {"provider_failing": True})
    failed = [request(running.url("api-gateway", "/v1/payments"), charge) for _ in range(3)]
    assert [(s, b["status"], b["error"]) for s, b in failed] == [
        (402, "failed", PROVIDER_ERROR)
    ] * 3
    running.put_faults("payment", {})
    status, paid = request(running.url("api-gateway", "/v1/payments"), charge)
    assert (status, paid["status"]) == (201, "succeeded")
    ids = [b["id"] for _, b in failed]
    with psycopg.connect(running.stores.admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, final_xid IS NOT NULL FROM payments WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    assert rows == [("failed", True)] * 3
    # What PaymentSuccessRatioLow reads: finance_payments_total by status.
    exporter = start_exporter("revenue", running.stores.exporter_url, None)
    payments = by_label(scrape(exporter), "finance_payments_total", "status", "method")
    assert payments == {("failed", "card"): 3.0, ("succeeded", "card"): 1.0}


def test_a_stalled_feed_stops_the_ticks_and_the_quotes(running: Running) -> None:
    client = redis.Redis.from_url(running.stores.redis_admin_url, decode_responses=True)

    def tick() -> tuple[str | None, dict[str, object]]:
        return client.get("md:last_tick:binance"), request(running.url("market-data", QUOTE))[1]

    try:
        running.put_faults("market-data", {"feed_stalled": True})
        time.sleep(1.5)  # a publish under way when the knob turned finishes first
        stalled = tick()
        time.sleep(2.5)  # the feed writes every second
        assert tick() == stalled
        assert stalled[0] is not None and stalled[1]["timestamp"] == stalled[0]
        running.put_faults("market-data", {})
        # poll every 0.2s, at most 5s: the next round of the feed writes again
        deadline = time.monotonic() + 5
        while tick() == stalled and time.monotonic() < deadline:
            time.sleep(0.2)
        assert float(str(tick()[0])) > float(stalled[0])
    finally:
        client.close()


def _closed_outcomes(admin_url: str) -> dict[str, int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT outcome, count(*) FROM signals WHERE status = 'closed' GROUP BY 1"
        ).fetchall()
    return {str(outcome): int(count) for outcome, count in rows}


def test_an_accuracy_drop_makes_the_model_evaluation_read_low(
    running: Running, start_exporter: StartExporter
) -> None:
    """Every signal closed under signal_accuracy 0 fails; the evaluation scores the model on
    them and the signals exporter's finance_prediction_accuracy_ratio (ModelAccuracyLow's
    expression) reads that score."""
    signal = {"strategy": "momentum", "timeframe": "5m", "model": "lstm_v3", "symbol": "AAPL"}
    signal.update(direction="long", confidence=0.7)
    running.put_faults("trading", {"signal_accuracy": 0})
    # The strategy's active set holds 20; each signal past them closes one.
    answers = [request(running.url("api-gateway", "/v1/signals"), signal) for _ in range(32)]
    assert {status for status, _ in answers} == {201}
    assert sum(body["closed"] is not None for _, body in answers) == 12
    assert _closed_outcomes(running.stores.admin_url) == {"failure": 12}
    pool = PostgresPool(running.stores.platform_url)
    try:
        assert evaluate_models(pool, min_decided=10) == {"lstm_v3": 0.0}
    finally:
        pool.close()
    stores = running.stores
    exporter = start_exporter("signals", stores.exporter_url, stores.redis_exporter_url)
    accuracy = by_label(scrape(exporter), "finance_prediction_accuracy_ratio", "model")
    assert accuracy == {("lstm_v3",): 0.0}
