"""Versions typed once: images released together share one version variable in
docker-compose.yml, and what is pinned to the Grafana image (the Foundation SDK that builds the
dashboards, the Grafana version named beside the key lists we read from Grafana's source) follows
it."""

from __future__ import annotations

import re

import pytest

from support.compose_vars import ComposeVariableError, defaults, resolve
from support.pins import pinned_image
from support.repo import ROOT

COMPOSE = ROOT / "docker-compose.yml"
REQUIREMENTS = ROOT / "requirements-dev.txt"
# Families released together, all at one version: registry path prefix → the variable that holds
# it. Every image under the prefix must end in `:${VARIABLE:-version}`.
FAMILIES = {"docker.elastic.co/": "ELASTIC_VERSION"}
IMAGE = re.compile(r"^(?P<repository>[^:]+(?::\d+/[^:]+)?):(?P<tag>.+)$")
VERSION_TAG = re.compile(r"^v?\d+(\.\d+)+")
SDK_PIN = re.compile(r"^grafana-foundation-sdk==(?P<epoch>\d+)!(?P<version>\S+)$", re.MULTILINE)
# Files that name the Grafana version something was read from (keys of its source, its API).
GRAFANA_MENTIONS = [
    ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml",
    ROOT / "tests" / "config" / "test_dashboards.py",
]
GRAFANA_MENTION = re.compile(r"\bGrafana (\d+\.\d+)(?:\.\d+)?\b")


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
    assert elastic == ["ELASTICSEARCH_IMAGE", "FILEBEAT_IMAGE", "KIBANA_IMAGE", "LOGSTASH_IMAGE"]
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


# The Foundation SDK is built once per Grafana minor release (its versions are EPOCH!X.Y.0, the
# epoch being the build time), against that minor's schemas; Grafana's patch releases keep them.
# So the SDK's X.Y must be the image's X.Y, and its patch is always 0: an image bump within a
# minor (11.6.0 → 11.6.3) needs no new SDK, a minor bump needs one.
def grafana_problems(requirements: str, image: str, mentions: dict[str, str]) -> list[str]:
    """The SDK pin, and every "Grafana X.Y" in `mentions` (file name → text), against `image`."""
    tag = image.rsplit(":", 1)[1].removeprefix("v")
    minor = ".".join(tag.split(".")[:2])
    problems: list[str] = []
    pins = list(SDK_PIN.finditer(requirements))
    if len(pins) != 1:
        problems.append(
            f"requirements-dev.txt: {len(pins)} grafana-foundation-sdk==EPOCH!X.Y.0 pins"
        )
    for pin in pins:
        if pin.group("version") != f"{minor}.0":
            problems.append(
                f"grafana-foundation-sdk targets Grafana {pin.group('version')}, the image is"
                f" {image}: pin the SDK build for {minor}.0"
            )
    for name, text in sorted(mentions.items()):
        for number, line in enumerate(text.splitlines(), start=1):
            for said in GRAFANA_MENTION.findall(line):
                if said != minor:
                    problems.append(
                        f"{name} line {number} says Grafana {said}, the image is {image}: read"
                        " what it describes again in that version, then update the line"
                    )
    return problems


def grafana_mentions() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text() for path in GRAFANA_MENTIONS}


def test_grafana_sdk_and_mentions_follow_the_image() -> None:
    image = pinned_image("GRAFANA_IMAGE")
    assert grafana_problems(REQUIREMENTS.read_text(), image, grafana_mentions()) == []


@pytest.mark.parametrize(
    ("image", "sdk", "problem"),
    [
        ("grafana/grafana:11.6.3", "1769699379!11.6.0", None),
        (
            "grafana/grafana:12.0.0",
            "1769699379!11.6.0",
            "grafana-foundation-sdk targets Grafana 11.6.0, the image is grafana/grafana:12.0.0:"
            " pin the SDK build for 12.0.0",
        ),
        (
            "grafana/grafana:11.6.0",
            "1769699452!11.5.0",
            "grafana-foundation-sdk targets Grafana 11.5.0, the image is grafana/grafana:11.6.0:"
            " pin the SDK build for 11.6.0",
        ),
    ],
    ids=["patch-bump", "image-minor-bump", "sdk-other-minor"],
)
def test_a_planted_grafana_sdk_mismatch_is_reported(
    image: str, sdk: str, problem: str | None
) -> None:
    requirements = re.sub(
        r"(?m)^grafana-foundation-sdk==.*$",
        f"grafana-foundation-sdk=={sdk}",
        REQUIREMENTS.read_text(),
    )
    problems = grafana_problems(requirements, image, {})
    assert problems == ([] if problem is None else [problem])


def test_a_planted_grafana_mention_mismatch_is_reported() -> None:
    mentions = {"notes.yml": "# keys as Grafana 11.6 reads them\n# as Grafana 11.5.2 reads them\n"}
    assert grafana_problems(REQUIREMENTS.read_text(), "grafana/grafana:11.6.0", mentions) == [
        "notes.yml line 2 says Grafana 11.5, the image is grafana/grafana:11.6.0: read what it"
        " describes again in that version, then update the line"
    ]
