"""`start`'s preflight: nothing is changed when a check fails, and each failure says what to do.

Docker and Compose v2, the settings in the environment and `.env` (a bad port or datastore URL
names its variable and line), `.env` private when it holds a password, enough memory and disk,
vm.max_map_count when Elasticsearch runs, and the published ports free. The project it renders
is kept in .state/project.json for the later steps, so `start` reads the compose file once.
"""

from __future__ import annotations

import re
import shutil
import socket
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from finance_stack import datastores, state
from finance_stack.compose import ComposeError, Project, ps, read_project
from finance_stack.envfile import Settings

# Elasticsearch refuses to start below this (its bootstrap check).
MIN_MAP_COUNT = 262144
MIN_MEMORY_MB = 1536
MIN_MEMORY_WITH_ELASTICSEARCH_MB = 6144
MIN_DISK_MB = 4096
# A URL with a password in it: scheme://user:password@host
_PASSWORD_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


class PreflightError(RuntimeError):
    """A check failed; the message names the cause and the fix."""


@dataclass(frozen=True)
class Machine:
    """What the checks read from the host (a seam for tests)."""

    meminfo: Path = Path("/proc/meminfo")
    max_map_count: Path = Path("/proc/sys/vm/max_map_count")


def check_docker(settings: Settings) -> Path | None:
    """The CLI and the engine (Compose v2 is checked by the first compose call); the engine's
    data folder, for the disk check."""
    if shutil.which("docker", path=settings.environ.get("PATH")) is None:
        raise PreflightError(
            "docker not found: install Docker Engine (https://docs.docker.com/engine/install/)"
            " and re-run"
        )
    info = subprocess.run(
        ["docker", "info", "--format", "{{.DockerRootDir}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=settings.environ,
    )
    if info.returncode != 0:
        where = settings.environ.get("DOCKER_HOST") or "the default socket"
        raise PreflightError(
            f"cannot reach the Docker engine at {where}: start it (sudo systemctl start docker),"
            " or set DOCKER_HOST, or add your user to the docker group"
        )
    folder = Path(info.stdout.strip()) if info.stdout.strip() else None
    return folder if folder is not None and folder.is_dir() else None


def check_env_file(root: Path, fix: bool) -> str | None:
    """`.env` with a password in a URL must be 0600; with `fix` it is made so. A note, or None."""
    path = root / ".env"
    if not path.is_file() or not _PASSWORD_IN_URL.search(path.read_text(encoding="utf-8")):
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077 == 0:
        return None
    if not fix:
        return f".env holds a password and is mode {mode:04o}: run chmod 600 .env"
    path.chmod(0o600)
    return f".env holds a password: mode changed from {mode:04o} to 0600"


def check_datastores(settings: Settings) -> dict[str, str]:
    """The monitoring URLs of your own datastores parse; the variables Compose then needs."""
    try:
        _, redis = datastores.targets(settings)
    except datastores.DatastoreURLError as err:
        raise PreflightError(str(err)) from None
    return datastores.compose_exports(redis)


def check_memory(project: Project, settings: Settings, machine: Machine) -> None:
    """MemAvailable against the profiles' needs."""
    elastic = "elasticsearch" in project.services
    default = MIN_MEMORY_WITH_ELASTICSEARCH_MB if elastic else MIN_MEMORY_MB
    needed = settings.integer("MIN_MEMORY_MB", default, minimum=0)
    available_kb = 0
    for line in machine.meminfo.read_text(encoding="utf-8").splitlines():
        if line.startswith("MemAvailable:"):
            available_kb = int(line.split()[1])
    if available_kb // 1024 < needed:
        raise PreflightError(
            f"only {available_kb // 1024} MiB of memory available, {needed} MiB needed for"
            f" profiles {project.profiles}: free some, use fewer profiles"
            " (COMPOSE_PROFILES=demo), or set MIN_MEMORY_MB"
        )


def check_disk(folder: Path, settings: Settings) -> None:
    """Free space where the engine keeps its data."""
    needed = settings.integer("MIN_DISK_MB", MIN_DISK_MB, minimum=0)
    usage = shutil.disk_usage(folder)
    if usage.free // (1024 * 1024) < needed:
        raise PreflightError(
            f"only {usage.free // (1024 * 1024)} MiB free on {folder}, {needed} MiB needed:"
            " free some disk or set MIN_DISK_MB"
        )


def check_map_count(project: Project, machine: Machine) -> None:
    """Elasticsearch's bootstrap check, before it fails inside its container."""
    if "elasticsearch" not in project.services:
        return
    current = int(machine.max_map_count.read_text(encoding="utf-8").strip() or 0)
    if current < MIN_MAP_COUNT:
        raise PreflightError(
            f"vm.max_map_count is {current}; Elasticsearch needs {MIN_MAP_COUNT}: run"
            f" 'sudo sysctl -w vm.max_map_count={MIN_MAP_COUNT}' (and add it to"
            " /etc/sysctl.conf), or leave out the logs profile"
        )


def check_ports(project: Project, running: set[str], listening: Callable[[str, int], bool]) -> None:
    """Every published port of a service that is not already running is free."""
    for service in project.services.values():
        if service.name in running:
            continue
        for port in service.ports:
            if listening(port.local_host, port.published):
                fix = f"set {port.variable} in .env" if port.variable else "change its port"
                raise PreflightError(
                    f"port {port.published} on {port.host_ip} (for {service.name}) is already in"
                    f" use: stop what listens there (ss -ltnp 'sport = :{port.published}') or {fix}"
                )


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


OTLP_LABEL = "ai-finance.otlp"


def otlp_endpoint(project: Project, settings: Settings) -> str | None:
    """Jaeger's OTLP endpoint when it runs and the user has not chosen OTLP_ENDPOINT."""
    if settings.get("OTLP_ENDPOINT").is_set:
        return None
    for service in project.services.values():
        scheme, _, port = service.labels.get(OTLP_LABEL, "").partition(" ")
        if scheme and port:
            return f"{scheme}://{service.name}:{port}"
    return None


def run(
    root: Path,
    settings: Settings,
    profiles: str,
    running: set[str],
    machine: Machine | None = None,
    fix: bool = True,
) -> tuple[Project, list[str]]:
    """Every check in order; the rendered project and notes (e.g. .env made private)."""
    machine = machine or Machine()
    engine_root = check_docker(settings)
    notes = [note for note in [check_env_file(root, fix=fix)] if note]
    # Rendered with what start exports, so the kept project is the one Compose runs.
    settings.environ.update(check_datastores(settings))
    try:
        project = read_project(root, profiles, settings)
    except ComposeError as err:
        raise PreflightError(str(err)) from None
    check_memory(project, settings, machine)
    check_disk(engine_root or root, settings)
    check_map_count(project, machine)
    check_ports(project, running, listening)
    state.write(root, state.PROJECT_FILE, project.to_json())
    return project, notes


def containers_running(root: Path, settings: Settings) -> set[str]:
    """Services with a running container (their ports are theirs, not a clash)."""
    try:
        return {c.service for c in ps(root, settings.environ) if c.state == "running"}
    except ComposeError:
        return set()
