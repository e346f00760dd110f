"""Versions typed once: images released together share one version variable in
docker-compose.yml."""

from __future__ import annotations

import re

import pytest

from support.compose_vars import ComposeVariableError, defaults, resolve
from support.repo import ROOT

COMPOSE = ROOT / "docker-compose.yml"
# Families released together, all at one version: registry path prefix → the variable that holds
# it. Every image under the prefix must end in `:${VARIABLE:-version}`.
FAMILIES = {"docker.elastic.co/": "ELASTIC_VERSION"}
IMAGE = re.compile(r"^(?P<repository>[^:]+(?::\d+/[^:]+)?):(?P<tag>.+)$")
VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+")


def vendor(repository: str) -> str:
    """Who publishes an image: its registry host (quay.io/org), else its Docker Hub namespace."""
    parts = repository.split("/")
    if len(parts) > 1 and "." in parts[0]:
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else "library"


def family_problems(compose: str) -> list[str]:
    """Images of one family that do not share its version variable, and images of one vendor
    that carry the same version typed separately (a family not declared yet), sorted."""
    try:
        written = defaults(compose)
    except ComposeVariableError as err:
        return [f"docker-compose.yml: {err}"]
    images = {name: value for name, value in written.items() if name.endswith("_IMAGE")}
    problems: list[str] = []
    literal_tags: dict[tuple[str, str], list[str]] = {}
    for name, value in images.items():
        found = IMAGE.match(value)
        if found is None:
            problems.append(f"{name}: {value!r} has no tag")
            continue
        repository, tag = found.group("repository"), found.group("tag")
        family = next((v for prefix, v in FAMILIES.items() if repository.startswith(prefix)), None)
        if family is not None:
            if not re.fullmatch(r"\$\{" + family + r":-[^${}]+\}", tag):
                problems.append(f"{name}: tag {tag!r} is not ${{{family}:-…}}")
        elif "${" not in tag and VERSION_TAG.match(tag):
            literal_tags.setdefault((vendor(repository), tag), []).append(name)
        elif "${" in tag:
            problems.append(f"{name}: tag {tag!r} nests a variable but is in no family")
    for (publisher, tag), names in sorted(literal_tags.items()):
        if len(names) > 1:
            problems.append(
                f"{', '.join(sorted(names))}: {publisher} images all at {tag}; give them one"
                " version variable (FAMILIES in tests/config/test_image_versions.py)"
            )
    return sorted(problems)


def test_families_share_one_version_variable() -> None:
    assert family_problems(COMPOSE.read_text()) == []


def test_elastic_version_moves_every_elastic_image() -> None:
    written = defaults(COMPOSE.read_text())
    elastic = sorted(n for n, v in written.items() if v.startswith("docker.elastic.co/"))
    assert elastic == ["ELASTICSEARCH_IMAGE", "KIBANA_IMAGE", "LOGSTASH_IMAGE"]
    version = written["ELASTIC_VERSION"]
    assert {resolve(written[n]).rsplit(":", 1)[1] for n in elastic} == {version}


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "docker.elastic.co/logstash/logstash:${ELASTIC_VERSION:-8.18.2}",
            "docker.elastic.co/logstash/logstash:8.18.2",
            "LOGSTASH_IMAGE: tag '8.18.2' is not ${ELASTIC_VERSION:-…}",
        ),
        (
            "docker.elastic.co/kibana/kibana:${ELASTIC_VERSION:-8.18.2}",
            "docker.elastic.co/kibana/kibana:${KIBANA_VERSION:-8.18.2}",
            "KIBANA_IMAGE: tag '${KIBANA_VERSION:-8.18.2}' is not ${ELASTIC_VERSION:-…}",
        ),
        (
            "prom/node-exporter:v1.9.1",
            "prom/node-exporter:v0.28.1",
            "ALERTMANAGER_IMAGE, NODE_EXPORTER_IMAGE: prom images all at v0.28.1; give them one"
            " version variable (FAMILIES in tests/config/test_image_versions.py)",
        ),
    ],
    ids=["literal-tag", "other-variable", "undeclared-family"],
)
def test_a_planted_family_mismatch_is_reported(old: str, new: str, problem: str) -> None:
    compose = COMPOSE.read_text()
    assert old in compose
    assert family_problems(compose.replace(old, new, 1)) == [problem]


def test_a_planted_version_default_mismatch_is_reported() -> None:
    compose = COMPOSE.read_text()
    old = "docker.elastic.co/kibana/kibana:${ELASTIC_VERSION:-8.18.2}"
    assert old in compose
    problems = family_problems(compose.replace(old, old.replace("8.18.2", "8.18.1")))
    assert len(problems) == 1
    assert (
        "different defaults for one variable: ELASTIC_VERSION: ['8.18.1', '8.18.2']"
        in (problems[0])
    )
