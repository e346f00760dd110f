"""The stand-in images run exactly the versions docker-compose.yml pins.

Each Go stand-in is built from its upstream module at the pinned version (tests/live/images/
pinned-go.sh, build.sh). Here each image's programs are asked their version in a container and
compared with the compose file's pin, read afresh: a pin bumped without the stand-in rebuilt,
or a build that picked up another version, fails."""

from __future__ import annotations

import re
from dataclasses import dataclass

import docker
import pytest

from support.pins import pinned_version

VERSION_LABEL = "org.ai-finance.standin.version"


@dataclass(frozen=True)
class Program:
    image: str  # the stand-in's folder under tests/live/images
    variable: str  # its image variable in docker-compose.yml
    entrypoint: list[str]
    pattern: str  # finds the reported version in the output

    def version(self, output: str) -> str | None:
        found = re.search(self.pattern, output, re.MULTILINE)
        return found.group(1).removeprefix("v") if found else None


PROGRAMS = [
    Program(
        "prometheus",
        "PROMETHEUS_IMAGE",
        ["/bin/prometheus", "--version"],
        r"^prometheus, version (\S+)",
    ),
    Program(
        "prometheus",
        "PROMETHEUS_IMAGE",
        ["/bin/promtool", "--version"],
        r"^promtool, version (\S+)",
    ),
    Program(
        "alertmanager",
        "ALERTMANAGER_IMAGE",
        ["/bin/alertmanager", "--version"],
        r"^alertmanager, version (\S+)",
    ),
    Program(
        "alertmanager",
        "ALERTMANAGER_IMAGE",
        ["/bin/amtool", "--version"],
        r"^amtool, version (\S+)",
    ),
    Program(
        "node-exporter",
        "NODE_EXPORTER_IMAGE",
        ["/bin/node_exporter", "--version"],
        r"^node_exporter, version (\S+)",
    ),
    Program(
        "postgres-exporter",
        "POSTGRES_EXPORTER_IMAGE",
        ["/bin/postgres_exporter", "--version"],
        r"^postgres_exporter, version (\S+)",
    ),
    Program(
        "redis-exporter",
        "REDIS_EXPORTER_IMAGE",
        ["/redis_exporter", "--version"],
        r"Redis Metrics Exporter (\S+)",
    ),
    Program(
        "jaeger",
        "JAEGER_IMAGE",
        ["/cmd/jaeger/jaeger-linux", "version"],
        r"git-version=(\S+?),",
    ),
]


def reported(client: docker.DockerClient, program: Program) -> str:
    """What the program prints of its version, run in a container of its image (removed after,
    with the anonymous volumes its image declares)."""
    container = client.containers.run(
        f"ai-finance-standin/{program.image}:test",
        entrypoint=program.entrypoint,
        detach=True,
        network_mode="none",
    )
    try:
        container.wait(timeout=60)
        return str(container.logs(stdout=True, stderr=True).decode(errors="replace"))
    finally:
        container.remove(v=True, force=True)


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.entrypoint[0].rsplit("/", 1)[1])
def test_the_standin_runs_the_pinned_version(
    standin_env: dict[str, str], docker_client: docker.DockerClient, program: Program
) -> None:
    output = reported(docker_client, program)
    assert program.version(output) == pinned_version(program.variable), output
    labels = docker_client.images.get(f"ai-finance-standin/{program.image}:test").labels
    assert labels[VERSION_LABEL].removeprefix("v") == pinned_version(program.variable)


def test_a_bumped_pin_is_not_what_the_standin_runs(
    standin_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    """The comparison above can fail: against a compose file whose pin moved on, the image
    built for the old pin reports a different version."""
    prometheus = PROGRAMS[0]
    compose = "image: ${PROMETHEUS_IMAGE:-prom/prometheus:v3.5.1}\n"
    assert prometheus.version(reported(docker_client, prometheus)) != pinned_version(
        prometheus.variable, compose
    )


def test_jaeger_reports_the_module_it_was_built_from(
    standin_env: dict[str, str], docker_client: docker.DockerClient
) -> None:
    """Jaeger's v2 version is a release tag, not in its Go module: the build records the module
    version (v1.(minor+63).patch) as the commit, and the image's label names the module."""
    jaeger = PROGRAMS[-1]
    output = reported(docker_client, jaeger)
    major, minor, patch = pinned_version(jaeger.variable).split(".")
    assert major == "2"
    module_version = f"v1.{int(minor) + 63}.{patch}"
    assert f"git-commit=module-{module_version}," in output, output
    labels = docker_client.images.get("ai-finance-standin/jaeger:test").labels
    assert (
        labels["org.ai-finance.standin.module"]
        == f"github.com/jaegertracing/jaeger@{module_version}"
    )
