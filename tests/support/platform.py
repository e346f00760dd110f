"""The demo platform as a subprocess on free loopback ports, stopped by pid."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from finance_demo.platform.app import SERVICES

START_TIMEOUT_SECONDS = 30.0


def free_port_range(count: int) -> int:
    """The first of `count` consecutive TCP ports on 127.0.0.1 that nothing listens on."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first: int = probe.getsockname()[1]
        if first + count > 65535:
            continue
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def request(
    url: str, body: dict[str, object] | None = None, timeout_seconds: float = 10.0
) -> tuple[int, dict[str, object]]:
    """GET `url`, or POST `body` as JSON; the status and the JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    outgoing = urllib.request.Request(
        url,
        data=data,
        headers={"Content-Type": "application/json"},
        method="POST" if data else "GET",
    )
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout_seconds) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@dataclass
class PlatformProcess:
    """`finance-demo platform` running as a child process; its stdout goes to `log`."""

    base_port: int
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, service: str, path: str = "") -> str:
        """The URL of `path` on `service`."""
        return f"http://127.0.0.1:{self.base_port + SERVICES.index(service)}{path}"

    @property
    def gateway(self) -> str:
        """The gateway's base URL."""
        return self.url("api-gateway")

    def log_lines(self) -> list[dict[str, object]]:
        """Every JSON log line written so far."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> int:
        """SIGTERM, then wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_platform(database_url: str, redis_url: str, folder: Path) -> PlatformProcess:
    """Start the platform and wait until every service answers /healthz."""
    base_port = free_port_range(len(SERVICES))
    log = folder / f"platform-{base_port}.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    argv = [sys.executable, "-m", "finance_demo.cli", "platform"]
    argv += ["--listen-host", "127.0.0.1", "--base-port", str(base_port)]
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    running = PlatformProcess(base_port, log, process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    pending = list(SERVICES)
    while pending:
        if process.poll() is not None or time.monotonic() > deadline:
            running.stop()
            raise RuntimeError(f"platform did not start:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(running.url(pending[0], "/healthz"), timeout=2):
                pending.pop(0)
        except OSError:
            time.sleep(0.1)
    return running
