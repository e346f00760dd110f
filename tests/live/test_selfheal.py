"""The stack heals itself after a crash, live (issue: operations, self-healing).

A crash is what the kernel does to a process that segfaults or runs out of memory: SIGKILL of
the container's main process. Docker's restart policy (`restart: unless-stopped`, every
long-running service) brings the container back; these tests show that it is healthy and
scraped again, that Alertmanager neither loses nor repeats a page across its own crash, and
that an exporter's counters continue across its crash without a reset or a jump.

`docker kill` is not a crash: Docker records it as a manual stop and, by design, its restart
policy does not restart the container (docs/operations.md, Self-healing). The tests kill the
process from the host, as the kernel would.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import docker.models.containers
import pytest
from test_stack import (
    Stack,
    _notified,
    demo_stack,
    get_json,
    prometheus_query,
    running_services,
)

from support.repo import ROOT

# Alertmanager's --data.maintenance-interval in docker-compose.yml: how often it writes its
# notification log (and silences) to its volume, so the most a crash can forget.
MAINTENANCE = re.search(
    r"--data\.maintenance-interval=(\d+)s", (ROOT / "docker-compose.yml").read_text()
)
# One-shot jobs: they exit when done and are not restarted.
ONE_SHOTS = {"secrets-init", "demo-setup"}


@pytest.fixture(scope="module")
def stack(standin_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with demo_stack(standin_env, tmp_path_factory.mktemp("heal"), "heal") as running:
        yield running


def crash(container: docker.models.containers.Container) -> int:
    """SIGKILL the container's main process from the host, as the kernel's OOM killer does;
    the restart count it had."""
    container.reload()
    count = int(container.attrs["RestartCount"])
    os.kill(int(container.attrs["State"]["Pid"]), signal.SIGKILL)
    return count


def back(container: docker.models.containers.Container, count: int, seconds: float) -> float:
    """Seconds until the container has restarted once more and is healthy (or running, without
    a healthcheck); fails after `seconds`."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        container.reload()
        state = container.attrs["State"]
        health = state.get("Health", {}).get("Status", "healthy")
        if container.attrs["RestartCount"] > count and state["Running"] and health == "healthy":
            return time.monotonic() - start
        time.sleep(1)
    pytest.fail(f"{container.name} is not back after {seconds:.0f}s: {container.attrs['State']}")


def _firing(stack: Stack, alertname: str, since: str) -> dict[str, list[bool]]:
    """Per receiver (PagerDuty, email, each team's Slack channel), the FIRING (True) and
    RESOLVED (False) notifications of `alertname` the alert sink recorded since `since`."""
    found: dict[str, list[bool]] = {}
    everything: Any = get_json(stack.url("ALERT_SINK_PORT", "/notifications"))
    for entry in everything:
        paging = entry["kind"] == "email" or entry["path"] == "/pagerduty"
        if str(entry["time"]) < since or not (paging or entry["path"].startswith("/slack/")):
            continue  # before, or the Watchdog's heartbeat and the drills' webhook
        firing, name, _ = _notified(entry)
        if name == alertname:
            found.setdefault(str(entry["receiver"]), []).append(firing)
    return found


def test_alertmanager_writes_its_notification_log_often() -> None:
    assert MAINTENANCE is not None, "docker-compose.yml: Alertmanager has no maintenance interval"
    assert int(MAINTENANCE[1]) <= 10


@pytest.mark.timeout(900)
def test_an_alertmanager_crash_neither_loses_nor_repeats_a_page(stack: Stack) -> None:
    """RedisDown pages once per receiver; Alertmanager crashes after its notification log is
    on disk; back, it gets the alert again from Prometheus and sends nothing twice; the
    resolve, which comes after the crash, still reaches every receiver."""
    assert MAINTENANCE is not None
    compose = ["compose", "--project-directory", str(stack.root)]
    since = datetime.now(UTC).isoformat(timespec="milliseconds")
    stack.docker(*compose, "stop", "demo-redis")
    try:
        # RedisDown: `for: 2m` after redis_up turns 0, the rule interval, group_wait (5s here).
        deadline = time.monotonic() + 300
        while not (first := _firing(stack, "RedisDown", since)) and time.monotonic() < deadline:
            time.sleep(5)
        assert first and all(sent == [True] for sent in first.values()), first
        time.sleep(int(MAINTENANCE[1]) + 5)  # one write of the notification log, and margin
        manager = stack.service_container("alertmanager")
        seconds = back(manager, crash(manager), 120)
        print(f"alertmanager back and healthy {seconds:.1f}s after the crash")
        # Prometheus sends its firing alerts again within its resend delay (1m); the new
        # aggregation group waits group_wait, then finds the page in the notification log.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                alerts: Any = get_json(stack.url("ALERTMANAGER_PORT", "/api/v2/alerts"))
            except OSError:
                alerts = []  # still starting
            if any(a["labels"]["alertname"] == "RedisDown" for a in alerts):
                break
            time.sleep(3)
        else:
            pytest.fail("Prometheus did not send RedisDown to the restarted Alertmanager")
        time.sleep(30)  # group_wait (5s) and group_interval (10s) of the test copy, twice over
        assert _firing(stack, "RedisDown", since) == first, "a page was sent again"
    finally:
        stack.docker(*compose, "start", "demo-redis")
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        sent = _firing(stack, "RedisDown", since)
        if all(s == [True, False] for s in sent.values()):
            break
        time.sleep(5)
    assert set(sent) == set(first) and all(s == [True, False] for s in sent.values()), sent


def _final_payments(stack: Stack) -> int:
    """Payments with a final status in the demo Postgres (what finance_payments_total counts),
    read as the platform's own user, from its container."""
    program = (
        "import pathlib, psycopg\n"
        "url = pathlib.Path('/run/secrets/platform_database_url').read_text().strip()\n"
        "with psycopg.connect(url) as conn:\n"
        "    print(conn.execute('SELECT count(*) FROM payments WHERE final_xid IS NOT NULL')"
        ".fetchone()[0])"
    )
    result = stack.service_container("demo-platform").exec_run(["python3", "-c", program])
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return int(result.output.decode().strip())


def _scraped_payments(stack: Stack, after: float) -> float:
    """sum(finance_payments_total) from a scrape of the revenue exporter later than `after`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = prometheus_query(stack, "timestamp(sum(finance_payments_total))")
        if found and float(found[0]["value"][1]) > after:  # type: ignore[index]
            value = prometheus_query(stack, "sum(finance_payments_total)")
            return float(value[0]["value"][1])  # type: ignore[index]
        time.sleep(2)
    pytest.fail("the revenue exporter was not scraped again")


@pytest.mark.timeout(600)
def test_an_exporter_crash_neither_resets_nor_jumps_its_counters(stack: Stack) -> None:
    """The revenue exporter crashes; back (from its checkpoint volume), its payments counter
    never goes below what it served before the crash (a reset), never above the final payments
    Postgres holds when it is read (a double count), and reaches the final payments Postgres
    held at the crash. It may get there a few scrapes late: it counts a payment only once every
    older transaction has ended (docs/data-contract.md: `high` is the snapshot xmin), so on a
    loaded machine the first scrape after the restart can trail Postgres by a few payments."""
    before = _scraped_payments(stack, 0)
    exporter = stack.service_container("revenue-exporter")
    crashed_at = time.time()
    at_crash = _final_payments(stack)
    assert before <= at_crash, (before, at_crash)
    seconds = back(exporter, crash(exporter), 120)
    print(f"revenue-exporter back and healthy {seconds:.1f}s after the crash")
    # poll every scrape (2s), at most 120s: each scraped value against Postgres read after it
    served: list[tuple[float, int]] = []
    deadline = time.monotonic() + 120
    while not served or served[-1][0] < at_crash:
        assert time.monotonic() < deadline, f"never reached {at_crash} at the crash: {served}"
        scraped = _scraped_payments(stack, time.time())
        served.append((scraped, _final_payments(stack)))
    assert all(before <= value <= ceiling for value, ceiling in served), (before, served)
    window = f"{int(time.time() - crashed_at) + 60}s"
    resets = prometheus_query(stack, f"sum(resets(finance_payments_total[{window}]))")
    assert [s["value"][1] for s in resets] == ["0"], resets  # type: ignore[index]


def _rfc3339(stamp: str) -> float:
    """Prometheus' RFC 3339 time with nanoseconds, as a Unix time."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp() + float(
        f"0.{fraction or 0}"
    )


@pytest.mark.timeout(600)
def test_an_out_of_memory_kill_in_a_container_is_alerted_to_sre(stack: Stack) -> None:
    """A process in the revenue exporter's container allocates past the container's mem_limit
        (128m): the kernel OOM-kills it, node_exporter's node_vmstat_oom_kill counts it, and
        HostOomKill fires and reaches the sre receivers. The exporter itself (the kernel picks the
    largest process of the cgroup) stays up and healthy, not restarted."""
    since = datetime.now(UTC).isoformat(timespec="milliseconds")
    before = prometheus_query(stack, "max(node_vmstat_oom_kill)")
    exporter = stack.service_container("revenue-exporter")
    restarts = int(exporter.attrs["RestartCount"])
    hog = exporter.exec_run(["python3", "-c", "bytearray(1 << 30)"])
    assert hog.exit_code == 137, hog.output.decode(errors="replace")  # SIGKILL, by the kernel
    # HostOomKill: increase over 5m > 0 for 1m, the rule interval, then group_wait.
    deadline = time.monotonic() + 300
    while not (sent := _firing(stack, "HostOomKill", since)) and time.monotonic() < deadline:
        time.sleep(5)
    assert sent and all(name.startswith("sre") for name in sent), sent
    after = prometheus_query(stack, "max(node_vmstat_oom_kill)")
    assert float(after[0]["value"][1]) > float(before[0]["value"][1])  # type: ignore[index]
    exporter.reload()
    assert exporter.attrs["State"]["Running"] and exporter.attrs["RestartCount"] == restarts
    assert exporter.attrs["State"].get("Health", {}).get("Status") == "healthy"


@pytest.mark.timeout(1800)
def test_every_service_comes_back_by_itself_after_a_crash_and_is_scraped_again(
    stack: Stack,
) -> None:
    """Each running service, crashed in turn, restarts healthy by itself; afterwards every
    target Prometheus scrapes is up, with a scrape later than the last crash. Last in the
    module: the alert sink forgets what it had recorded when it crashes."""
    services = sorted(running_services(stack.root, stack.env) - ONE_SHOTS)
    assert {"prometheus", "alertmanager", "revenue-exporter", "demo-postgres"} <= set(services)
    times = {}
    for service in services:
        container = stack.service_container(service)
        times[service] = back(container, crash(container), 180)
    print("back after a crash, s: " + ", ".join(f"{s} {t:.0f}" for s, t in times.items()))
    last = time.time()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        answer: Any = get_json(stack.url("PROMETHEUS_PORT", "/api/v1/targets?state=active"))
        targets = answer["data"]["activeTargets"]
        stale = [
            t["scrapeUrl"]
            for t in targets
            if t["health"] != "up" or _rfc3339(t["lastScrape"]) < last
        ]
        if not stale:
            break
        time.sleep(5)
    assert not stale, f"not scraped again since the crashes: {stale}"
