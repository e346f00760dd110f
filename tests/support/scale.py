"""The scale-out override's engines as real processes on loopback: Thanos Receive (two nodes in
one hashring) and Thanos Query at the version docker-compose.scale.yml pins, the pinned
Prometheus remote-writing to them, and the pinned Alertmanager as a gossip pair. Each program
runs with the flags the override gives its service, addresses and paths made local
(`localize`), so the test proves the override's flags, not a copy of them. Every process is
stopped by pid."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

from support.compose_vars import resolve
from support.repo import ROOT
from support.servers import free_port, stop_process

OVERRIDE = ROOT / "docker-compose.scale.yml"
START_TIMEOUT_SECONDS = 30.0
ADDRESS = re.compile(r"(?P<host>[a-z0-9.-]+):(?P<port>\d{2,5})\b")


def missing(what: str) -> NoReturn:
    """A missing program fails in CI (CI=true) and skips elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(what)
    pytest.skip(what)


def pinned_tool(name: str) -> str:
    """prometheus or alertmanager from PATH (tests/run.sh puts the pinned builds there)."""
    found = shutil.which(name)
    if found is None:
        missing(f"{name} not found: tests/run.sh builds it (pinned-go.sh {name})")
    return found


def override_command(service: str) -> list[str]:
    """The override's command for `service`, its ${VAR:-default}s at their defaults."""
    document: dict[str, Any] = yaml.safe_load(OVERRIDE.read_text())
    return [resolve(str(arg)) for arg in document["services"][service]["command"]]


@dataclass(frozen=True)
class Ports:
    """Loopback ports standing for each service's container ports."""

    by_service: dict[str, dict[int, int]]

    def of(self, service: str, port: int) -> int:
        return self.by_service[service][port]

    def url(self, service: str, port: int) -> str:
        return f"http://127.0.0.1:{self.of(service, port)}"


def allocate(services: dict[str, tuple[int, ...]]) -> Ports:
    """A free loopback port for every (service, container port)."""
    return Ports({name: {port: free_port() for port in ports} for name, ports in services.items()})


def localize(text: str, service: str, ports: Ports) -> str:
    """`text` with Compose addresses made local: a wildcard bind (0.0.0.0:P) is this service's
    loopback port for P, another service's host:P is that service's loopback port for P."""

    def replace(match: re.Match[str]) -> str:
        host, port = match["host"], int(match["port"])
        name = service if host == "0.0.0.0" else host
        if name in ports.by_service and port in ports.by_service[name]:
            return f"127.0.0.1:{ports.of(name, port)}"
        return match.group()

    return ADDRESS.sub(replace, text)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll `url` every 0.2s, at most START_TIMEOUT_SECONDS, until it answers 200."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not become ready:\n{log.read_text()[-3000:]}")


@contextmanager
def running(argv: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A process writing to `log`, ready when `ready_url` answers; terminated by pid after."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready_url, process, log)
        yield process
    finally:
        stop_process(process)


THANOS_SERVICES = {
    "thanos-receive-0": (10901, 10902, 10908, 19391),
    "thanos-receive-1": (10901, 10902, 10908, 19391),
    "thanos-query": (10901, 10902),
}


@contextmanager
def thanos_cluster(binary: str, tmp_path: Path) -> Iterator[Ports]:
    """Both receivers and the querier of the override, on loopback; their ports."""
    ports = allocate(THANOS_SERVICES)
    hashring = tmp_path / "hashring.json"
    hashring.write_text(localize((ROOT / "thanos" / "hashring.json").read_text(), "", ports))
    with ExitStack() as stack:
        for service in THANOS_SERVICES:
            args = [localize(arg, service, ports) for arg in override_command(service)]
            args = [
                arg.replace("/etc/thanos/hashring.json", str(hashring)).replace(
                    "/tmp/thanos/", f"{tmp_path / service}/"
                )
                for arg in args
            ]
            stack.enter_context(
                running(
                    [binary, *args],
                    tmp_path / f"{service}.log",
                    f"{ports.url(service, 10902)}/-/ready",
                )
            )
        yield ports
