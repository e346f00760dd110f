"""The image pins of docker-compose.yml (`${PROMETHEUS_IMAGE:-prom/prometheus:v3.5.0}`): typed
once there, read here by the tests that check the tools and stand-ins run those versions."""

from __future__ import annotations

import re

from support.repo import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


def pinned_image(variable: str, compose_text: str | None = None) -> str:
    """The default image of `variable` in the compose file; it must be given exactly once."""
    text = COMPOSE_FILE.read_text() if compose_text is None else compose_text
    found = set(re.findall(r"\$\{" + re.escape(variable) + r":-([^}]+)\}", text))
    assert len(found) == 1, f"{variable}: defaults in docker-compose.yml: {sorted(found)}"
    return found.pop()


def pinned_version(variable: str, compose_text: str | None = None) -> str:
    """The version of an image pin, without a leading v: `prom/prometheus:v3.5.0` is 3.5.0."""
    return pinned_image(variable, compose_text).rsplit(":", 1)[1].removeprefix("v")
