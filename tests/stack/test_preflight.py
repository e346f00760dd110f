"""start's preflight: each failing check says what to do, and changes nothing."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from finance_stack import preflight
from finance_stack.compose import Port, Project, Service, read_project
from finance_stack.envfile import Settings
from finance_stack.preflight import Machine, PreflightError
from support.repo import ROOT


def project(*services: Service, profiles: str = "demo") -> Project:
    return Project(name="t", profiles=profiles, services={s.name: s for s in services})


def machine(tmp_path: Path, available_mb: int, map_count: int = 262144) -> Machine:
    (tmp_path / "meminfo").write_text(f"MemTotal: 99 kB\nMemAvailable: {available_mb * 1024} kB\n")
    (tmp_path / "map_count").write_text(f"{map_count}\n")
    return Machine(meminfo=tmp_path / "meminfo", max_map_count=tmp_path / "map_count")


def test_memory_needs_more_with_elasticsearch(tmp_path: Path) -> None:
    settings = Settings(tmp_path, environ={})
    small = project(Service("prometheus", "p", None, False))
    preflight.check_memory(small, settings, machine(tmp_path, 2000))
    with pytest.raises(
        PreflightError, match=r"^only 2000 MiB of memory available, 6144 MiB needed"
    ):
        preflight.check_memory(
            project(Service("elasticsearch", "e", None, False), profiles="full"),
            settings,
            machine(tmp_path, 2000),
        )


def test_map_count_is_checked_only_when_elasticsearch_runs(tmp_path: Path) -> None:
    low = machine(tmp_path, 9000, map_count=65530)
    preflight.check_map_count(project(Service("prometheus", "p", None, False)), low)
    with pytest.raises(PreflightError, match=r"sudo sysctl -w vm.max_map_count=262144"):
        preflight.check_map_count(project(Service("elasticsearch", "e", None, False)), low)


def test_a_taken_port_names_its_variable(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        service = Service(
            "jaeger",
            "j",
            None,
            False,
            ports=(Port(4317, taken, "127.0.0.1", "OTLP_GRPC_PORT", "4317"),),
        )
        with pytest.raises(PreflightError) as raised:
            preflight.check_ports(project(service), set(), preflight.listening)
        assert f"port {taken} on 127.0.0.1 (for jaeger) is already in use" in str(raised.value)
        assert "set OTLP_GRPC_PORT in .env" in str(raised.value)
        # The stack's own running service holds its port: not a clash.
        preflight.check_ports(project(service), {"jaeger"}, preflight.listening)


def test_env_with_a_password_is_made_private(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("DATABASE_URL=postgresql://reader:s3cret@db:5432/platform\n")
    env.chmod(0o644)
    assert preflight.check_env_file(tmp_path, fix=False) == (
        ".env holds a password and is mode 0644: run chmod 600 .env"
    )
    assert env.stat().st_mode & 0o777 == 0o644  # a dry run changes nothing
    assert preflight.check_env_file(tmp_path, fix=True) == (
        ".env holds a password: mode changed from 0644 to 0600"
    )
    assert env.stat().st_mode & 0o777 == 0o600
    assert preflight.check_env_file(tmp_path, fix=True) is None


def test_env_without_a_password_is_left_alone(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("COMPOSE_PROFILES=demo\nDATABASE_URL=postgresql://reader@db/platform\n")
    env.chmod(0o644)
    assert preflight.check_env_file(tmp_path, fix=True) is None
    assert env.stat().st_mode & 0o777 == 0o644


def test_no_docker_on_path_says_how_to_install_it(tmp_path: Path) -> None:
    settings = Settings(tmp_path, environ={"PATH": str(tmp_path)})
    with pytest.raises(PreflightError, match=r"^docker not found: install Docker Engine"):
        preflight.check_docker(settings)


def test_an_unreachable_engine_says_how_to_start_it(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    with pytest.raises(
        PreflightError, match=r"cannot reach the Docker engine at unix:///nonexistent"
    ):
        preflight.check_docker(Settings(tmp_path, environ=env))


def test_the_readme_states_the_memory_the_preflight_checks() -> None:
    readme = (ROOT / "README.md").read_text()
    whole = preflight.MIN_MEMORY_WITH_ELASTICSEARCH_MB / 1024
    small = preflight.MIN_MEMORY_MB / 1024
    assert f"{whole:g} GiB of available memory for the whole stack" in readme
    assert f"({small:g} GiB without\nElasticsearch" in readme
    assert f"{preflight.MIN_DISK_MB // 1024} GiB of free disk" in readme


@pytest.mark.parametrize(
    ("profiles", "environ", "expected"),
    [
        ("demo,traces", {}, "http://jaeger:4318"),
        ("demo", {}, None),
        ("demo,traces", {"OTLP_ENDPOINT": "http://collector:4318"}, None),
        ("demo,traces", {"OTLP_ENDPOINT": ""}, None),
    ],
)
def test_services_send_traces_to_jaeger_when_it_runs_unless_the_user_chose(
    profiles: str, environ: dict[str, str], expected: str | None
) -> None:
    """The endpoint comes from Jaeger's ai-finance.otlp label in the real compose file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "OTLP_"))}
    settings = Settings(ROOT, environ={**env, **environ})
    rendered = read_project(ROOT, profiles, settings)
    assert preflight.otlp_endpoint(rendered, settings) == expected
