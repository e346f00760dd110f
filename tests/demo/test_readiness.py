"""The platform's /readyz: 200 while Postgres and Redis answer, 503 naming the one that does not,
within its deadline even when a datastore hangs, and 200 again after recovery. /healthz stays
200 throughout (liveness)."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from finance_demo.platform.app import SERVICES
from finance_demo.platform.readiness import READINESS_TIMEOUT_SECONDS, Readiness
from finance_stack.access import REDIS_PLATFORM_USER
from support.datastores import create_redis_platform_user, tempdir
from support.platform import PlatformProcess, request, start_platform
from support.repo import ROOT
from support.servers import PostgresServer, RedisServer

pytestmark = pytest.mark.live

RECOVERY_TIMEOUT_SECONDS = 20.0
# The deadline plus the HTTP round trip and a loaded machine's scheduling.
ANSWER_WITHIN_SECONDS = READINESS_TIMEOUT_SECONDS + 1.0


def readyz(platform: PlatformProcess, service: str = "payment") -> tuple[int, dict[str, object]]:
    return request(platform.url(service, "/readyz"), timeout_seconds=5)


def wait_ready(platform: PlatformProcess) -> tuple[int, dict[str, object]]:
    """Poll /readyz every 0.2s, at most RECOVERY_TIMEOUT_SECONDS, until it answers 200."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    answer = readyz(platform)
    while answer[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        answer = readyz(platform)
    return answer


def healthz(platform: PlatformProcess) -> int:
    """The liveness status of one service (a text answer, not JSON)."""
    with urllib.request.urlopen(platform.url("payment", "/healthz"), timeout=5) as response:
        status: int = response.status
        return status


@pytest.fixture
def own_redis() -> Iterator[tuple[RedisServer, str]]:
    """A Redis of its own (this test stops it) and the platform user's password."""
    root = tempdir("finance-redis-outage-")
    server = RedisServer(root)
    server.start()
    password = secrets.token_urlsafe(16)
    _platform_user(server, password)
    try:
        yield server, password
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _platform_user(server: RedisServer, password: str) -> None:
    admin = redis.Redis.from_url(server.url())
    create_redis_platform_user(admin, password)
    admin.close()


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a frozen server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def test_ready_on_every_port_while_both_datastores_answer(
    own_postgres: tuple[PostgresServer, str], own_redis: tuple[RedisServer, str], tmp_path: Path
) -> None:
    _, pg_url = own_postgres
    redis_server, password = own_redis
    platform = start_platform(pg_url, redis_server.url(REDIS_PLATFORM_USER, password), tmp_path)
    try:
        answers = {service: readyz(platform, service) for service in SERVICES}
    finally:
        assert platform.stop() == 0
    assert answers == {service: (200, {"ready": True, "failing": {}}) for service in SERVICES}


def test_a_stopped_postgres_is_named_and_readiness_returns_after_recovery(
    own_postgres: tuple[PostgresServer, str], own_redis: tuple[RedisServer, str], tmp_path: Path
) -> None:
    pg_server, pg_url = own_postgres
    redis_server, password = own_redis
    platform = start_platform(pg_url, redis_server.url(REDIS_PLATFORM_USER, password), tmp_path)
    try:
        assert readyz(platform)[0] == 200
        pg_server.stop()
        status, body = readyz(platform)
        health = healthz(platform)
        pg_server.start()
        recovered = wait_ready(platform)
        events = [
            (line["message"], line.get("datastore"))
            for line in platform.log_lines()
            if str(line["message"]).startswith("datastore")
        ]
    finally:
        assert platform.stop() == 0
    assert status == 503 and body["ready"] is False
    assert isinstance(body["failing"], dict) and sorted(body["failing"]) == ["postgres"]
    assert "postgres unavailable" in body["failing"]["postgres"]
    assert health == 200  # liveness does not follow the datastore
    assert recovered == (200, {"ready": True, "failing": {}})
    assert events == [("datastore down", "postgres"), ("datastore recovered", "postgres")]


def test_a_stopped_redis_is_named_and_readiness_returns_after_recovery(
    own_postgres: tuple[PostgresServer, str], own_redis: tuple[RedisServer, str], tmp_path: Path
) -> None:
    _, pg_url = own_postgres
    redis_server, password = own_redis
    platform = start_platform(pg_url, redis_server.url(REDIS_PLATFORM_USER, password), tmp_path)
    try:
        assert readyz(platform)[0] == 200
        redis_server.stop()
        status, body = readyz(platform, "trading")
        redis_server.start()  # same port, empty: its users are created again
        _platform_user(redis_server, password)
        recovered = wait_ready(platform)
    finally:
        assert platform.stop() == 0
    assert status == 503 and body["ready"] is False
    assert isinstance(body["failing"], dict) and sorted(body["failing"]) == ["redis"]
    assert "redis unavailable" in body["failing"]["redis"]
    assert recovered == (200, {"ready": True, "failing": {}})


def test_a_postgres_that_never_answers_fails_readiness_within_the_deadline(
    blackhole: int, own_redis: tuple[RedisServer, str], tmp_path: Path
) -> None:
    redis_server, password = own_redis
    frozen = f"postgresql://finance_platform:x@127.0.0.1:{blackhole}/platform"
    platform = start_platform(frozen, redis_server.url(REDIS_PLATFORM_USER, password), tmp_path)
    try:
        started = time.monotonic()
        first = readyz(platform)
        first_seconds = time.monotonic() - started
        # Asked again at once, while the first probe still waits for the frozen server.
        second = readyz(platform, "api-gateway")
        elapsed = time.monotonic() - started
    finally:
        assert platform.stop() == 0
    assert first_seconds < ANSWER_WITHIN_SECONDS
    assert elapsed < 2 * ANSWER_WITHIN_SECONDS
    assert first == (503, {"ready": False, "failing": {"postgres": "no answer within 1s"}})
    assert second == (
        503,
        {"ready": False, "failing": {"postgres": "the previous check has not answered yet"}},
    )


def kuma_searches(body: dict[str, object]) -> str:
    """The text Uptime Kuma 1.23's keyword monitor searches: axios parses a JSON answer, and the
    monitor looks for the keyword in JSON.stringify of it (server/model/monitor.js), compact."""
    return json.dumps(body, separators=(",", ":"))


def test_the_gateways_uptime_keyword_is_in_its_ready_answer_and_not_in_a_failing_one(
    own_postgres: tuple[PostgresServer, str],
    own_redis: tuple[RedisServer, str],
    blackhole: int,
    tmp_path: Path,
) -> None:
    monitors = yaml.safe_load((ROOT / "uptime-kuma" / "monitors.yml").read_text())["monitors"]
    (gateway,) = [m for m in monitors if m["name"] == "api-gateway"]
    assert gateway["url"].endswith("/readyz")
    redis_url = own_redis[0].url(REDIS_PLATFORM_USER, own_redis[1])
    answers = []
    for postgres in (own_postgres[1], f"postgresql://x:x@127.0.0.1:{blackhole}/platform"):
        platform = start_platform(postgres, redis_url, tmp_path)
        try:
            answers.append(readyz(platform, "api-gateway"))
        finally:
            assert platform.stop() == 0
    (ready_status, ready), (failing_status, failing) = answers
    assert (ready_status, failing_status) == (200, 503)
    assert gateway["keyword"] in kuma_searches(ready)
    assert gateway["keyword"] not in kuma_searches(failing)


# ---- Readiness on its own ---------------------------------------------------------------------


def test_probes_run_concurrently_and_a_stuck_one_is_not_started_twice() -> None:
    release = threading.Event()
    calls = {"stuck": 0, "fine": 0}

    def stuck(timeout_seconds: float) -> None:
        calls["stuck"] += 1
        release.wait(10)

    def fine(timeout_seconds: float) -> None:
        calls["fine"] += 1

    readiness = Readiness({"stuck": stuck, "fine": fine}, timeout_seconds=0.2)
    started = time.monotonic()
    first = readiness.check()
    second = readiness.check()
    elapsed = time.monotonic() - started
    release.set()
    for thread in threading.enumerate():
        if thread.name == "readyz-stuck":
            thread.join(timeout=5)
    third = readiness.check()
    assert dict(first.failing) == {"stuck": "no answer within 0.2s"}
    assert dict(second.failing) == {"stuck": "the previous check has not answered yet"}
    assert elapsed < 0.35  # one deadline for both probes, none for a check not started
    assert third.failing == {} and third.ready
    assert calls == {"stuck": 2, "fine": 3}


def test_a_probe_that_raises_is_failing_with_its_first_line() -> None:
    def broken(timeout_seconds: float) -> None:
        raise RuntimeError("refused\nDETAIL: more")

    report = Readiness({"postgres": broken}).check()
    assert dict(report.failing) == {"postgres": "refused"} and not report.ready
