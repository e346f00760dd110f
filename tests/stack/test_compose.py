"""The one reader of the compose file, over the real docker-compose.yml and docker compose."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from finance_stack.compose import ComposeError, Project, parse_ps, read_project, variable_of
from finance_stack.envfile import Settings
from support.repo import ROOT, copy_repo


def environ(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DEMO_"))}
    base = {k: v for k, v in base.items() if not k.endswith(("_PORT", "_IMAGE"))}
    return {**base, **extra}


def test_every_published_port_comes_with_its_variable_and_default() -> None:
    project = read_project(ROOT, "demo,full", Settings(ROOT, environ=environ(GRAFANA_PORT="3999")))
    grafana = project.services["grafana"].host_port(3000)
    assert grafana is not None
    assert (grafana.published, grafana.variable, grafana.default, grafana.host_ip) == (
        3999,
        "GRAFANA_PORT",
        "3001",
        "127.0.0.1",
    )
    jaeger = {p.target: p.variable for p in project.services["jaeger"].ports}
    assert jaeger == {16686: "JAEGER_UI_PORT", 4317: "OTLP_GRPC_PORT", 4318: "OTLP_HTTP_PORT"}
    logstash = {p.target: p.variable for p in project.services["logstash"].ports}
    assert logstash == {5000: "LOGSTASH_TCP_PORT", 5044: "LOGSTASH_BEATS_PORT"}
    # Every published port of the file has a variable: none is fixed.
    assert [
        (s.name, p.target) for s in project.services.values() for p in s.ports if not p.variable
    ] == []


def test_images_carry_their_variable_and_built_ones_are_marked() -> None:
    project = read_project(ROOT, "demo", Settings(ROOT, environ=environ()))
    prometheus = project.services["prometheus"]
    assert (prometheus.image_variable, prometheus.built) == ("PROMETHEUS_IMAGE", False)
    assert prometheus.image.startswith("prom/prometheus:v")
    assert project.services["revenue-exporter"].built
    assert "grafana" not in project.services  # profile full is not chosen
    assert project.services["demo-setup"].one_off and not project.services["prometheus"].one_off


def test_the_project_survives_its_state_file() -> None:
    project = read_project(ROOT, "demo", Settings(ROOT, environ=environ()))
    assert Project.from_json(project.to_json()) == project


@pytest.mark.parametrize("value", ["99999", "ninety"])
def test_a_bad_port_in_env_file_names_the_variable_and_line(tmp_path: Path, value: str) -> None:
    root = copy_repo(tmp_path / "repo")
    (root / ".env").write_text(f"# ports\nBIND_ADDRESS=127.0.0.1\nPROMETHEUS_PORT={value}\n")
    with pytest.raises(ComposeError) as raised:
        read_project(root, "demo", Settings(root, environ=environ()))
    assert str(raised.value).startswith(".env:3: PROMETHEUS_PORT=")
    assert value in str(raised.value)
    assert "set a free TCP port (1-65535)" in str(raised.value)


def test_without_the_compose_plugin_it_says_install_compose_v2(tmp_path: Path) -> None:
    # The real docker CLI, with a configuration folder and HOME that hold no cli-plugins.
    docker = shutil.which("docker")
    assert docker, "docker CLI not found"
    plugins = [
        Path(d) / "docker-compose"
        for d in (
            "/usr/libexec/docker/cli-plugins",
            "/usr/lib/docker/cli-plugins",
            "/usr/local/lib/docker/cli-plugins",
        )
    ]
    if any(p.exists() for p in plugins):
        pytest.fail(
            f"a system-wide Compose plugin is installed ({plugins}); this test needs it per user"
        )
    env = environ(DOCKER_CONFIG=str(tmp_path / "docker-config"), HOME=str(tmp_path))
    with pytest.raises(
        ComposeError, match=r"^Docker Compose v2 not found: install the Compose plugin"
    ):
        read_project(ROOT, "demo", Settings(ROOT, environ=env))


def test_variable_of_reads_nested_defaults() -> None:
    assert variable_of("${A_IMAGE:-repo/a:${A_VERSION:-1.2}}") == (
        "A_IMAGE",
        "repo/a:${A_VERSION:-1.2}",
    )
    assert variable_of("${PORT}") == ("PORT", None)
    assert variable_of("9090") == (None, None)


def test_ps_reads_both_output_shapes() -> None:
    line = (
        '{"ID":"abc","Service":"prometheus","State":"running","Health":"healthy","ExitCode":0,'
        '"Publishers":[{"URL":"127.0.0.1","PublishedPort":9090}]}'
    )
    assert parse_ps(line) == parse_ps(f"[{line}]")
    (container,) = parse_ps(line)
    assert (container.service, container.health, container.ports) == (
        "prometheus",
        "healthy",
        ("127.0.0.1:9090",),
    )
    assert parse_ps("") == []
