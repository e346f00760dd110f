"""The one reader of the compose file: `docker compose config` and `docker compose ps`.

A project is read from two renderings of the same file with the same profiles: the interpolated
one (what runs: images, published ports) and its `--no-interpolate` twin, so that every published
port and every image also carries the variable that sets it and its default. Nothing else in the
stack types a port or an image.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finance_stack.envfile import Settings

TIMEOUT_SECONDS = 120
COMPOSE_FILE = "docker-compose.yml"
# The scale-out override (docs/scale-out.md), merged onto COMPOSE_FILE when asked for.
SCALE_FILE = "docker-compose.scale.yml"
# ${NAME:-default}, ${NAME-default} or ${NAME}; the default may hold a nested ${...}.
_VARIABLE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>.*))?\}$")
_INSTALL_COMPOSE = (
    "Docker Compose v2 not found: install the Compose plugin (Debian/Ubuntu: apt-get install "
    "docker-compose-plugin; https://docs.docker.com/compose/install/linux/) and re-run"
)


class ComposeError(RuntimeError):
    """docker compose is missing or refused the project; the message says what to do."""


@dataclass(frozen=True)
class Port:
    """A published port: the container's port, the host's, and the variable that sets it."""

    target: int
    published: int
    host_ip: str
    variable: str | None
    default: str | None

    @property
    def local_host(self) -> str:
        """The address this machine reaches the port at (a wildcard bind is reached locally)."""
        return "127.0.0.1" if self.host_ip in ("0.0.0.0", "", "::") else self.host_ip


@dataclass(frozen=True)
class Service:
    """One service of the rendered project."""

    name: str
    image: str
    image_variable: str | None
    built: bool
    labels: dict[str, str] = field(default_factory=dict)
    ports: tuple[Port, ...] = ()
    has_healthcheck: bool = False
    restart: str = "no"

    @property
    def one_off(self) -> bool:
        """A job that runs to completion (restart "no"), not a long-running service."""
        return self.restart in ("", "no")

    def host_port(self, target: int) -> Port | None:
        """The published port of container port `target`, if it is published."""
        return next((port for port in self.ports if port.target == target), None)


@dataclass(frozen=True)
class Project:
    """The services the chosen profiles run."""

    name: str
    profiles: str
    services: dict[str, Service]

    def to_json(self) -> str:
        """For .state/project.json."""
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Project:
        """Read what to_json wrote."""
        data = json.loads(text)
        services = {
            name: Service(**{**service, "ports": tuple(Port(**port) for port in service["ports"])})
            for name, service in data["services"].items()
        }
        return cls(name=data["name"], profiles=data["profiles"], services=services)


def argv(
    root: Path, *args: str, all_profiles: bool = False, overrides: tuple[str, ...] = ()
) -> list[str]:
    """The docker compose command line for this project (with `overrides` merged on top)."""
    base = ["docker", "compose", "--project-directory", str(root)]
    for name in (COMPOSE_FILE, *overrides):
        base += ["--file", str(root / name)]
    return [*base, *(["--profile", "*"] if all_profiles else []), *args]


def run(
    root: Path,
    args: list[str],
    environ: Mapping[str, str],
    all_profiles: bool = False,
    overrides: tuple[str, ...] = (),
) -> str:
    """Run docker compose; its stdout, or ComposeError with what to do."""
    if shutil.which("docker", path=environ.get("PATH")) is None:
        raise ComposeError(
            "docker not found: install Docker Engine (https://docs.docker.com/engine/install/)"
            " and re-run"
        )
    command = argv(root, *args, all_profiles=all_profiles, overrides=overrides)
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
            env=dict(environ),
        )
    except subprocess.TimeoutExpired:
        raise ComposeError(
            f"{' '.join(command[:2])} {args[0]} took over {TIMEOUT_SECONDS}s"
        ) from None
    if result.returncode != 0:
        stderr = result.stderr.strip()
        if (
            "unknown flag: --project-directory" in stderr
            or "'compose' is not a docker command" in stderr
        ):
            raise ComposeError(_INSTALL_COMPOSE)
        raise ComposeError(
            f"docker compose {args[0]} failed: {stderr or 'exit ' + str(result.returncode)}"
        )
    return result.stdout


def variable_of(text: object) -> tuple[str | None, str | None]:
    """(NAME, default) when `text` is exactly one ${NAME...} reference, else (None, None)."""
    match = _VARIABLE.match(str(text))
    if not match:
        return None, None
    return match["name"], match["default"]


def _split_outside_braces(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == ":" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _raw_ports(raw_service: Mapping[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """Container port -> (variable, default) of the host port, from the uninterpolated service."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for entry in raw_service.get("ports") or []:
        if isinstance(entry, Mapping):
            published, target = str(entry.get("published", "")), str(entry.get("target", ""))
        else:
            parts = _split_outside_braces(str(entry).split("/")[0])
            published, target = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", parts[0])
        found[target] = variable_of(published)
    return found


def _services(rendered: Mapping[str, Any], raw: Mapping[str, Any]) -> dict[str, Service]:
    services = {}
    for name, service in sorted((rendered.get("services") or {}).items()):
        raw_service = (raw.get("services") or {}).get(name, {})
        variables = _raw_ports(raw_service)
        ports = []
        for port in service.get("ports") or []:
            if not port.get("published"):
                continue
            variable, default = variables.get(str(port["target"]), (None, None))
            ports.append(
                Port(
                    target=int(port["target"]),
                    published=int(port["published"]),
                    host_ip=str(port.get("host_ip") or "0.0.0.0"),
                    variable=variable,
                    default=default,
                )
            )
        services[name] = Service(
            name=name,
            image=str(service.get("image", "")),
            image_variable=variable_of(raw_service.get("image", ""))[0],
            built="build" in service,
            labels={str(k): str(v) for k, v in (service.get("labels") or {}).items()},
            ports=tuple(ports),
            has_healthcheck=bool(service.get("healthcheck"))
            and not service["healthcheck"].get("disable", False),
            restart=str(service.get("restart") or "no"),
        )
    return services


def check_ports(raw: Mapping[str, Any], settings: Settings) -> None:
    """Every host-port variable the user set is a port; ComposeError names it and its line."""
    for raw_service in (raw.get("services") or {}).values():
        for variable, _ in _raw_ports(raw_service).values():
            if variable is None or not settings.get(variable).is_set:
                continue
            try:
                settings.integer(variable, 0, minimum=1, maximum=65535)
            except ValueError as err:
                raise ComposeError(f"{err}: set a free TCP port (1-65535)") from None


def read_project(root: Path, profiles: str, settings: Settings) -> Project:
    """Render the compose file for `profiles`, with and without interpolation."""
    env = {**settings.compose_environ(), "COMPOSE_PROFILES": profiles}
    # The twin first: Compose's own error for a bad port names neither the variable nor .env.
    raw = json.loads(run(root, ["config", "--format", "json", "--no-interpolate"], env))
    check_ports(raw, settings)
    rendered = json.loads(run(root, ["config", "--format", "json"], env))
    return Project(
        name=str(rendered.get("name", "")), profiles=profiles, services=_services(rendered, raw)
    )


@dataclass(frozen=True)
class Container:
    """One container of the project, as `docker compose ps` lists it."""

    id: str
    service: str
    state: str
    health: str
    exit_code: int
    ports: tuple[str, ...]
    # The image the container was created from, as the compose file named it then.
    image: str = ""


def parse_ps(text: str) -> list[Container]:
    """`docker compose ps --format json`: one object per line (v2.21+) or one array."""
    text = text.strip()
    if not text:
        return []
    rows: list[dict[str, Any]] = (
        json.loads(text)
        if text.startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    return [
        Container(
            id=str(row.get("ID", "")),
            service=str(row["Service"]),
            state=str(row["State"]),
            health=str(row.get("Health") or ""),
            exit_code=int(row.get("ExitCode") or 0),
            ports=tuple(
                sorted(
                    {
                        f"{p.get('URL', '')}:{p['PublishedPort']}"
                        for p in row.get("Publishers") or []
                        if p.get("PublishedPort")
                    }
                )
            ),
            image=str(row.get("Image") or ""),
        )
        for row in sorted(rows, key=lambda r: str(r["Service"]))
    ]


def ps(root: Path, environ: Mapping[str, str]) -> list[Container]:
    """Every container of the project, whatever its profile, running or not."""
    return parse_ps(run(root, ["ps", "--all", "--format", "json"], environ, all_profiles=True))
