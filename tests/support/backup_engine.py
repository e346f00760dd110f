"""backup and restore without Docker: the pinned Prometheus and Alertmanager as local processes,
each "volume" a folder, `pause` the same freeze the cgroup freezer gives (SIGSTOP, SIGCONT), and
the workers the real `python -m finance_stack volume-worker` as local processes.

Every call the code makes to the engine is recorded, so a test can also show that nothing was
touched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from finance_stack.compose import Port, Project, Service
from finance_stack.stores import Store
from support.scale import wait_ready
from support.servers import free_port, stop_process
from support.stack import STACK_SRC


@dataclass
class LocalService:
    """A compose service as a local process over its data folder."""

    name: str
    data: Path
    port: int
    argv: Callable[[Path, int], list[str]]
    ready_path: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv(self.data, self.port), stdout=out, stderr=subprocess.STDOUT
            )
        wait_ready(f"{self.url}{self.ready_path}", self.process, self.log)

    def stop(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)  # a stopped process cannot exit
            stop_process(self.process)
            self.process = None


def prometheus_service(binary: str, tmp: Path, scrape_interval: str = "1s") -> LocalService:
    """The pinned Prometheus scraping itself every `scrape_interval`."""
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval},
                "scrape_configs": [
                    {
                        "job_name": "prometheus",
                        "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                    }
                ],
            }
        )
    )

    def argv(data: Path, port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]

    return LocalService(
        "prometheus", tmp / "prometheus-data", port, argv, "/-/ready", tmp / "prometheus.log"
    )


def alertmanager_service(binary: str, config: Path, tmp: Path) -> LocalService:
    """The pinned Alertmanager with `config`, writing its state every 5s as compose has it."""

    def argv(data: Path, port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config}",
            f"--storage.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--data.maintenance-interval=5s",
        ]

    return LocalService(
        "alertmanager",
        tmp / "alertmanager-data",
        free_port(),
        argv,
        "/-/ready",
        tmp / "alertmanager.log",
    )


def project(services: dict[str, LocalService]) -> Project:
    """The compose project these processes stand for: health labels and published ports as in
    docker-compose.yml."""
    targets = {"prometheus": 9090, "alertmanager": 9093}
    return Project(
        "local",
        "local",
        {
            name: Service(
                name,
                "image",
                None,
                False,
                labels={"ai-finance.health": f"http {targets[name]} /-/healthy"},
                ports=(Port(targets[name], local.port, "127.0.0.1", None, None),),
                restart="unless-stopped",
            )
            for name, local in services.items()
        },
    )


@dataclass
class LocalEngine:
    """The engine seam over local processes; `calls` records every call made to it."""

    services: dict[str, LocalService]
    calls: list[tuple[str, ...]] = field(default_factory=list)
    refuse_pause: bool = False
    environ: dict[str, str] = field(
        default_factory=lambda: {**os.environ, "PYTHONPATH": str(STACK_SRC)}
    )

    def pause(self, service: str) -> None:
        from finance_stack.engine import EngineError

        self.calls.append(("pause", service))
        if self.refuse_pause:
            raise EngineError("docker compose pause failed: the cgroup freezer is not available")
        process = self.services[service].process
        assert process is not None
        os.kill(process.pid, signal.SIGSTOP)

    def unpause(self, service: str) -> None:
        self.calls.append(("unpause", service))
        process = self.services[service].process
        assert process is not None
        os.kill(process.pid, signal.SIGCONT)

    def stop(self, services: list[str]) -> None:
        self.calls.append(("stop", *services))
        for name in services:
            self.services[name].stop()

    def start(self, services: list[str]) -> None:
        self.calls.append(("start", *services))
        for name in services:
            self.services[name].start()

    def worker(
        self, store: Store, args: list[str], read_only: bool, caps: tuple[str, ...] = ()
    ) -> list[str]:
        self.calls.append(("worker", store.name, *args))
        return [sys.executable, "-m", "finance_stack", "volume-worker", *args]

    def elastic(self, args: list[str]) -> list[str]:
        raise AssertionError("no Elasticsearch here")

    def mount_path(self, store: Store) -> str:
        return str(self.services[str(store.service)].data)
