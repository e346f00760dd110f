"""Benchmark: what the stack itself costs. Time from `start` to healthy, memory of each container
under the demo load, and Prometheus' series count and ingestion rate.

Usage: .venv/bin/python bench/bench_stack.py [--profiles "" demo,traces] [--settle 300]
           [--json docs/stack-cost.json]

Runs on the live tests' engine and images (DESIGN.md §8): it starts Debian's dockerd with
tests/live/docker-engine.sh and builds the stand-ins with tests/live/images/build.sh (cached, so
only a first run pays for them), then for each value of --profiles ("" is the core alone) starts
a copy of the repository with `./start-monitoring.sh start` on free loopback ports, as a user
would, and times it to the end of its wait for health. The stack's own images are built before
the clock starts, so the figure is a start with images present, not a first build. It then lets
the stack run --settle seconds under the demo load and reads each container's memory (the
engine's usage less its inactive file cache, as `docker stats` shows it) and Prometheus' own
metrics, and removes the stack with its volumes. Last, the size of the stack's own images, whole
and above the base image. Prints a Markdown table and writes the figures as JSON;
docs/performance.md keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "stack" / "src"))  # the tests' helpers import it

from live.conftest import BASE_IMAGE, STANDINS  # noqa: E402

from support.ports import PORTS  # noqa: E402
from support.repo import copy_repo  # noqa: E402
from support.servers import free_port  # noqa: E402

LIVE = ROOT / "tests" / "live"
MIB = 1024 * 1024


@dataclass
class Case:
    """The figures of one profile set."""

    profiles: str
    start_seconds: float
    containers: dict[str, float] = field(default_factory=dict)  # service -> MiB
    total_mib: float = 0.0
    head_series: float = 0.0
    samples_per_second: float = 0.0
    targets: int = 0


def _progress(message: str) -> None:
    print(f"[+] {message}", file=sys.stderr, flush=True)


def _script(*argv: str, timeout: int) -> str:
    result = subprocess.run(
        [str(LIVE / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def engine() -> str:
    """Start the tests' Docker engine (or find it running) and build the stand-ins."""
    _progress("Docker engine (tests/live/docker-engine.sh start)")
    host = _script("docker-engine.sh", "start", timeout=600).splitlines()[-1]
    host = host.removeprefix("DOCKER_HOST=")
    os.environ["DOCKER_HOST"] = host
    _script("docker-engine.sh", "compose", timeout=600)
    _progress("base image and stand-ins (cached after the first run)")
    _script("docker-engine.sh", "base-image", timeout=900)
    _script("images/build.sh", timeout=1800)
    return host


def stack_env(host: str, project: str, profiles: str) -> dict[str, str]:
    env = {variable: f"ai-finance-standin/{name}:test" for variable, name in STANDINS.items()}
    env.update(
        BASE_IMAGE=BASE_IMAGE,
        EXPORTERS_IMAGE="ai-finance/exporters:test",
        STACK_IMAGE="ai-finance/stack:test",
        DEMO_IMAGE="ai-finance/demo:test",
        DOCKER_HOST=host,
        COMPOSE_PROJECT_NAME=project,
        COMPOSE_PROFILES=profiles,
        WAIT_TIMEOUT="600",
    )
    env.update({variable: str(free_port()) for variable in PORTS})
    return env


def _run(root: Path, env: dict[str, str], *args: str, timeout: int) -> None:
    result = subprocess.run(
        [str(root / "start-monitoring.sh"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{(result.stderr + result.stdout)[-4000:]}")


def _compose(root: Path, env: dict[str, str], *args: str, timeout: int = 900) -> None:
    subprocess.run(
        ["docker", "compose", "--profile", "*", *args],
        cwd=root,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        timeout=timeout,
    )


def _query(env: dict[str, str], expr: str) -> float:
    url = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}/api/v1/query?" + urllib.parse.urlencode(
        {"query": expr}
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        result = json.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def _memory_mib(client: docker.DockerClient, project: str) -> dict[str, float]:
    """Each running container's memory as `docker stats` shows it: usage less inactive file."""
    found: dict[str, float] = {}
    label = f"com.docker.compose.project={project}"
    for container in client.containers.list(filters={"label": label}):
        reading: dict[str, Any] = container.stats(stream=False)  # type: ignore[assignment]
        stats = reading["memory_stats"]
        inactive = stats.get("stats", {}).get("inactive_file", 0)
        service = str(container.labels.get("com.docker.compose.service", container.name))
        found[service] = round((stats.get("usage", 0) - inactive) / MIB, 1)
    return dict(sorted(found.items()))


def measure(host: str, profiles: str, settle: int) -> Case:
    project = f"aif-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as tmp:
        root = copy_repo(Path(tmp))
        env = stack_env(host, project, profiles)
        try:
            _progress(f"profiles {profiles or '(core)'}: building our images (not timed)")
            _compose(root, env, "build", timeout=1800)
            _progress(f"profiles {profiles or '(core)'}: start, timed to healthy")
            began = time.monotonic()
            _run(root, env, "start", timeout=900)
            case = Case(profiles=profiles or "(core)", start_seconds=time.monotonic() - began)
            _progress(f"healthy after {case.start_seconds:.0f} s; running {settle} s")
            time.sleep(settle)
            case.containers = _memory_mib(docker.DockerClient(base_url=host), project)
            case.total_mib = round(sum(case.containers.values()), 1)
            case.head_series = _query(env, "prometheus_tsdb_head_series")
            case.samples_per_second = _query(
                env, "rate(prometheus_tsdb_head_samples_appended_total[2m])"
            )
            case.targets = int(_query(env, "count(up)"))
            return case
        finally:
            _progress(f"profiles {profiles or '(core)'}: removing the stack and its volumes")
            _compose(root, env, "down", "--volumes", "--remove-orphans")


OWN_IMAGES = ("ai-finance/exporters:test", "ai-finance/demo:test", "ai-finance/stack:test")


def image_sizes(client: docker.DockerClient) -> dict[str, dict[str, float]]:
    """The stack's own images: whole size, and what they add above the base image (the part a
    mirrored python image would carry too), in MB as `docker image ls` counts them."""
    base = float(client.images.get(BASE_IMAGE).attrs["Size"])
    sizes = {"base": {"image": BASE_IMAGE, "mb": round(base / 1e6, 1)}}
    for name in OWN_IMAGES:
        size = float(client.images.get(name).attrs["Size"])
        sizes[name] = {"mb": round(size / 1e6, 1), "above_base_mb": round((size - base) / 1e6, 1)}
    return sizes


def table(cases: list[Case]) -> str:
    services = sorted({name for case in cases for name in case.containers})
    head = "| | " + " | ".join(case.profiles for case in cases) + " |"
    lines = [head, "|---|" + "---:|" * len(cases)]
    lines.append("| start to healthy, s | " + " | ".join(f"{c.start_seconds:.0f}" for c in cases))
    lines.append("| scrape targets | " + " | ".join(str(c.targets) for c in cases))
    lines.append("| Prometheus head series | " + " | ".join(f"{c.head_series:.0f}" for c in cases))
    lines.append(
        "| samples ingested per s | " + " | ".join(f"{c.samples_per_second:.0f}" for c in cases)
    )
    lines.append("| memory of all containers, MiB | " + " | ".join(f"{c.total_mib}" for c in cases))
    for name in services:
        row = [f"{c.containers[name]}" if name in c.containers else "-" for c in cases]
        lines.append(f"| {name}, MiB | " + " | ".join(row))
    return "\n".join(line if line.endswith("|") else line + " |" for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["", "demo,traces"])
    parser.add_argument("--settle", type=int, default=300, help="seconds under load before reading")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    host = engine()
    cases = [measure(host, profiles, args.settle) for profiles in args.profiles]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}"
    print(f"Stack cost, {datetime.now(UTC):%Y-%m-%d}, {machine}, settle {args.settle} s\n")
    print(table(cases))
    sizes = image_sizes(docker.DockerClient(base_url=host))
    print(f"\nbase image {BASE_IMAGE}: {sizes['base']['mb']} MB")
    for name in OWN_IMAGES:
        print(f"{name}: {sizes[name]['mb']} MB, {sizes[name]['above_base_mb']} MB above the base")
    if args.json is not None:
        document: dict[str, Any] = {"machine": machine, "settle_seconds": args.settle}
        document["images"] = sizes
        document["cases"] = [asdict(case) for case in cases]
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
