"""A Docker engine, the Debian base image and the stand-in images for the live-container tests.

No registry is reachable on the development and CI machines (DESIGN.md §8), so the engine is
Debian's dockerd started by tests/live/docker-engine.sh, and the upstream images run as stand-ins
(tests/live/images/): Prometheus, Alertmanager, node-, postgres- and redis-exporter and Jaeger
built from their Go modules at the versions docker-compose.yml pins, Postgres and Redis from
Debian's packages. The stack's own images are built from their real Dockerfiles.

Every test here is marked `live` (needs the Docker engine), and only these are. Without root
the engine cannot start: a live test then skips, or fails under CI=true, where nothing may
skip for want of its service.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

LIVE = Path(__file__).resolve().parent
STANDINS = {
    "PROMETHEUS_IMAGE": "prometheus",
    "ALERTMANAGER_IMAGE": "alertmanager",
    "NODE_EXPORTER_IMAGE": "node-exporter",
    "POSTGRES_IMAGE": "postgres",
    "POSTGRES_EXPORTER_IMAGE": "postgres-exporter",
    "REDIS_IMAGE": "redis",
    "REDIS_EXPORTER_IMAGE": "redis-exporter",
    "JAEGER_IMAGE": "jaeger",
}
BASE_IMAGE = "ai-finance/debian:bookworm"
# testcontainers' reaper image (Ryuk) cannot be pulled here; every test removes what it made.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests under tests/live/ as live (this hook sees every collected test), and
    deselect the hours-long drills (marked drills_all) unless AI_FINANCE_ALL_DRILLS=1: pytest
    reports them as deselected, never as passed or skipped."""
    everything = os.environ.get("AI_FINANCE_ALL_DRILLS") == "1"
    kept, dropped = [], []
    for item in items:
        if LIVE in item.path.parents:
            item.add_marker(pytest.mark.live)
        (dropped if item.get_closest_marker("drills_all") and not everything else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _require_root() -> None:
    if os.geteuid() == 0:
        return
    reason = "the live tests start their own dockerd and need root"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)")
    pytest.skip(f"{reason}; run as root, or set CI=true to fail instead of skip")


@pytest.fixture(autouse=True)
def _root_for_docker() -> None:
    """Skip a live test without root, or fail it under CI=true."""
    _require_root()


def _script(*argv: str, timeout: int) -> str:
    result = subprocess.run(
        [str(LIVE / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """Our own Docker engine (installed and started if needed), with Compose and the base image."""
    _require_root()
    lines = _script("docker-engine.sh", "start", timeout=600).strip().splitlines()
    host = lines[-1].removeprefix("DOCKER_HOST=")
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = host
    _script("docker-engine.sh", "compose", timeout=600)
    _script("docker-engine.sh", "base-image", timeout=900)
    yield host
    if previous is None:
        os.environ.pop("DOCKER_HOST", None)
    else:
        os.environ["DOCKER_HOST"] = previous


@pytest.fixture(scope="session")
def standin_env(docker_host: str) -> dict[str, str]:
    """Environment that points the compose file's image variables at the stand-ins."""
    _script("images/build.sh", timeout=1800)
    env = {variable: f"ai-finance-standin/{name}:test" for variable, name in STANDINS.items()}
    env["BASE_IMAGE"] = BASE_IMAGE
    env["EXPORTERS_IMAGE"] = "ai-finance/exporters:test"
    env["STACK_IMAGE"] = "ai-finance/stack:test"
    env["DEMO_IMAGE"] = "ai-finance/demo:test"
    env["KUMA_SETUP_IMAGE"] = "ai-finance/kuma-setup:test"
    env["DOCKER_HOST"] = docker_host
    # Filebeat (profile logs) reads this engine's logs and socket, not the system engine's.
    env["DOCKER_SOCKET"] = docker_host.removeprefix("unix://")
    env["DOCKER_ROOT_DIR"] = subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "DOCKER_HOST": docker_host},
    ).stdout.strip()
    return env


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> Iterator[docker.DockerClient]:
    """The Docker SDK's client of our engine."""
    client = docker.DockerClient(base_url=docker_host, timeout=120)
    yield client
    client.close()
