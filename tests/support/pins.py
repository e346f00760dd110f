"""The image pins of docker-compose.yml (`${PROMETHEUS_IMAGE:-prom/prometheus:v3.5.0}`, or nested:
`${KIBANA_IMAGE:-docker.elastic.co/kibana/kibana:${ELASTIC_VERSION:-8.18.2}}`): typed once there,
read here by the tests that check the tools and stand-ins run those versions."""

from __future__ import annotations

from support.compose_vars import defaults, resolve
from support.repo import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"


def pinned_image(variable: str, compose_text: str | None = None) -> str:
    """The default image of `variable` in the compose file, nested defaults applied; one default
    per variable (compose_vars.defaults refuses two)."""
    text = COMPOSE_FILE.read_text() if compose_text is None else compose_text
    found = defaults(text)
    assert variable in found, f"{variable}: no ${{{variable}:-image:tag}} in docker-compose.yml"
    return resolve(found[variable])


def pinned_version(variable: str, compose_text: str | None = None) -> str:
    """The version of an image pin, without a leading v: `prom/prometheus:v3.5.0` is 3.5.0."""
    return pinned_image(variable, compose_text).rsplit(":", 1)[1].removeprefix("v")
