"""Uptime Kuma as code on the pinned Kuma image: `start` with profile uptime runs kuma-setup
(admin account, uptime-kuma/monitors.yml, the API key); running it again changes nothing, and
leaves a monitor made by hand alone; Prometheus scrapes Kuma's /metrics with the stored key
(up{job="uptime-kuma"} == 1) and holds monitor_status for every applied monitor, each up.

Needs louislam/uptime-kuma from a container registry, which has no stand-in here (DESIGN.md
section 8): where no registry is reachable it skips, naming the image. Run it on a machine that
can pull it with `tests/run.sh -m fullstack` (docs/testing.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from test_logs_fullstack import Stack
from test_stack import (
    compose,
    compose_down,
    get_json,
    poll,
    run_script,
    stack_env,
    unpullable,
)
from uptime_kuma_api import MonitorType, UptimeKumaApi

from support.repo import ROOT, copy_repo
from support.servers import free_port

pytestmark = pytest.mark.fullstack

PROFILES = "uptime"
WAIT_SECONDS = 240


def pulled_images(root: Path, env: dict[str, str]) -> list[str]:
    """The images of the services `env`'s profiles run that are neither built nor present."""
    services = json.loads(compose(root, env, "config", "--format", "json"))["services"]
    images = sorted({s["image"] for s in services.values() if "build" not in s})
    present = {
        image
        for image in images
        if subprocess.run(
            ["docker", "image", "inspect", image],
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, **env},
        ).returncode
        == 0
    }
    return [image for image in images if image not in present]


@pytest.fixture(scope="module")
def stack(standin_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = copy_repo(tmp_path_factory.mktemp("uptime") / "repo")
    env = stack_env(standin_env, f"aif-kuma-{uuid.uuid4().hex[:6]}")
    env["UPTIME_KUMA_PORT"] = str(free_port())
    env["COMPOSE_PROFILES"] = PROFILES
    missing = unpullable(pulled_images(root, env), env)
    if missing:
        pytest.skip(
            "needs images from a container registry, which is not reachable here: "
            + ", ".join(missing)
        )
    try:
        started = run_script(root, env, "start", timeout=1800)
        assert started.returncode == 0, (started.stderr + started.stdout)[-6000:]
        yield Stack(root, env)
    finally:
        compose_down(root, env)


def provision(stack: Stack) -> dict[str, Any]:
    """One more run of the kuma-setup job; its JSON report."""
    out = compose(stack.root, stack.env, "run", "--rm", "--no-deps", "kuma-setup", "--json")
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def applied() -> list[str]:
    """The monitors of uptime-kuma/monitors.yml that profile `uptime` runs."""
    monitors = yaml.safe_load((ROOT / "uptime-kuma" / "monitors.yml").read_text())["monitors"]
    return sorted(m["name"] for m in monitors if not m["profiles"] or PROFILES in m["profiles"])


def prometheus(stack: Stack, query: str) -> list[dict[str, Any]]:
    found = get_json(stack.url("PROMETHEUS_PORT", "/api/v1/query?" + urlencode({"query": query})))
    result: list[dict[str, Any]] = found["data"]["result"]  # type: ignore[index]
    return result


def test_start_ran_the_job_which_made_the_account_the_monitors_and_the_key(stack: Stack) -> None:
    logs = compose(stack.root, stack.env, "logs", "--no-log-prefix", "kuma-setup")
    assert "admin account created" in logs, logs
    assert f"monitors: {len(applied())} created, 0 changed, 0 removed" in logs, logs
    assert stack.password("uptime-kuma/api_key").startswith("uk")


def test_running_the_job_again_changes_nothing(stack: Stack) -> None:
    key = stack.password("uptime-kuma/api_key")
    for _ in range(2):
        report = provision(stack)
        assert (report["admin"], report["api_key"]) == ("existing", "kept")
        assert (report["created"], report["changed"], report["removed"]) == ([], {}, [])
        assert report["unchanged"] == applied()
    assert stack.password("uptime-kuma/api_key") == key


def test_a_monitor_made_by_hand_is_kept_and_listed(stack: Stack) -> None:
    with UptimeKumaApi(stack.url("UPTIME_KUMA_PORT", ""), timeout=30) as api:
        api.login("admin", stack.password("kuma_admin_password"))
        made = api.add_monitor(
            type=MonitorType.HTTP, name="by-hand", url="http://prometheus:9090/-/ready"
        )
    report = provision(stack)
    assert report["unmanaged"] == ["by-hand"] and report["removed"] == []
    with UptimeKumaApi(stack.url("UPTIME_KUMA_PORT", ""), timeout=30) as api:
        api.login("admin", stack.password("kuma_admin_password"))
        assert made["monitorID"] in {m["id"] for m in api.get_monitors()}
        api.delete_monitor(made["monitorID"])


def test_prometheus_scrapes_kuma_with_the_stored_key(stack: Stack) -> None:
    query = 'up{job="uptime-kuma"} == 1'
    assert len(poll(lambda: prometheus(stack, query), WAIT_SECONDS, every=5)) == 1, query


def test_every_applied_monitor_reports_up_through_prometheus(stack: Stack) -> None:
    def status() -> dict[str, str]:
        series = prometheus(stack, 'monitor_status{job="uptime-kuma"}')
        return {s["metric"]["monitor_name"]: s["value"][1] for s in series}

    def all_up() -> dict[str, str] | None:
        found = status()
        return found if sorted(found) == applied() and set(found.values()) == {"1"} else None

    assert poll(all_up, WAIT_SECONDS, every=5), f"monitor_status: {status()}"
