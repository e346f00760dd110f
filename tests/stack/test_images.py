"""Pulling the images a project runs: only the missing ones, and a failure names the variable.

Needs the tests' Docker engine (tests/run.sh starts it); no registry is reachable here, which is
exactly the failure a user without one meets."""

from __future__ import annotations

import os
import subprocess

import pytest

from finance_stack import images
from finance_stack.compose import Project, Service
from finance_stack.envfile import Settings
from support.repo import ROOT


@pytest.fixture
def settings() -> Settings:
    env = {**os.environ}
    env.setdefault("DOCKER_HOST", "unix:///run/ai-finance-docker/docker.sock")
    reachable = subprocess.run(["docker", "info"], capture_output=True, env=env, check=False)
    if reachable.returncode != 0:
        pytest.fail("the Docker engine for the tests is not running (tests/run.sh starts it)")
    return Settings(ROOT, environ=env)


def present_image(settings: Settings) -> str:
    listed = subprocess.run(
        ["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        env=settings.environ,
        check=True,
    ).stdout.split()
    usable = [name for name in listed if not name.endswith(":<none>")]
    if not usable:
        pytest.fail("the tests' engine has no image (tests/run.sh builds the base image)")
    return usable[0]


def test_only_missing_pulled_images_are_listed_with_their_variable(settings: Settings) -> None:
    project = Project(
        "t",
        "",
        {
            "here": Service("here", present_image(settings), "HERE_IMAGE", False),
            "built": Service("built", "ai-finance/never:built", "BUILT_IMAGE", True),
            "gone": Service("gone", "registry.invalid/gone:v1", "GONE_IMAGE", False),
        },
    )
    assert images.missing(project, settings) == [("gone", "registry.invalid/gone:v1", "GONE_IMAGE")]


def test_an_unpullable_image_names_its_variable_and_the_fix(settings: Settings) -> None:
    project = Project(
        "t", "", {"gone": Service("gone", "registry.invalid/gone:v1", "GONE_IMAGE", False)}
    )
    lines: list[str] = []
    with pytest.raises(images.PullError) as raised:
        images.pull(project, settings, lines.append, dry_run=False)
    assert lines == ["pulling registry.invalid/gone:v1 (gone)"]
    message = str(raised.value)
    assert message.startswith("cannot pull registry.invalid/gone:v1 for gone (")
    assert "set GONE_IMAGE in .env (README.md: Mirrored or locally built images)" in message


def test_a_dry_run_prints_the_pulls_and_pulls_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    project = Project(
        "t", "", {"gone": Service("gone", "registry.invalid/gone:v1", "GONE_IMAGE", False)}
    )
    assert images.pull(project, settings, lambda line: None, dry_run=True) == 1
    assert capsys.readouterr().out == "docker pull registry.invalid/gone:v1\n"
