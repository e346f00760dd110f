""".env.example against what reads it: every variable docker-compose.yml (or its scale-out
override, docker-compose.scale.yml) reads is there, as a
commented `#NAME=default` line with the compose file's default character for character (a nested
default as written: `#X_IMAGE=repo/x:${X_VERSION:-1.0}` for `${X_IMAGE:-repo/x:${X_VERSION:-1.0}}`),
and every variable there is read by docker-compose.yml or the CLI (start-monitoring.sh and the
stack/ package it calls). Where the CLI falls back to a default of its own, that default must be
the example's and the compose file's."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from support.compose_vars import ComposeVariableError, defaults
from support.repo import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SCALE = ROOT / "docker-compose.scale.yml"
EXAMPLE = ROOT / ".env.example"
SCRIPT = ROOT / "start-monitoring.sh"
STACK = ROOT / "stack" / "src" / "finance_stack"
COMPOSE_CONFIG = (
    *("docker", "compose", "--file", str(COMPOSE), "--file", str(SCALE)),
    *("--profile", "*", "config"),
)
SETTING = re.compile(r"^#([A-Z][A-Z0-9_]*)=(.*)$")
UNCOMMENTED = re.compile(r"^([A-Z][A-Z0-9_]*)=")
# The CLI reads a setting as ${NAME} in bash, or through finance_stack's Settings in Python:
# .get("NAME"), .value("NAME", "default"), .integer("NAME", 600, ...).
SCRIPT_READS = re.compile(
    r"\$\{([A-Z][A-Z0-9_]*)(?![A-Za-z0-9_])|\.(?:get|value|integer)\(\"([A-Z][A-Z0-9_]*)\""
)
# Its literal fallbacks: `${NAME:-600}`, `.value("NAME", "127.0.0.1")`, `.integer("NAME", 600`.
SCRIPT_DEFAULT = re.compile(
    r"\$\{([A-Z][A-Z0-9_]*):-([^}$]*)\}"
    r"|\.(?:get|value|integer)\(\"([A-Z][A-Z0-9_]*)\", (?:\"([^\"]*)\"|(\d+))[,)]"
)


def example_settings(example: str) -> tuple[dict[str, str], list[str]]:
    """The `#NAME=value` lines of .env.example, and its problems: duplicates, uncommented lines."""
    settings: dict[str, str] = {}
    problems: list[str] = []
    for number, line in enumerate(example.splitlines(), start=1):
        if found := UNCOMMENTED.match(line):
            problems.append(
                f".env.example line {number}: {found.group(1)} is set; keep every line commented,"
                " so a copied .env changes nothing until a line is uncommented"
            )
        elif found := SETTING.match(line):
            name, value = found.groups()
            if name in settings:
                problems.append(f".env.example line {number}: {name} again")
            settings[name] = value
    return settings, problems


def script_defaults(script: str) -> dict[str, set[str]]:
    """Name → the literal defaults start-monitoring.sh falls back to for it."""
    found: dict[str, set[str]] = {}
    for match in SCRIPT_DEFAULT.finditer(script):
        if match.group(1):
            name, value = match.group(1), match.group(2)
        else:
            name, value = (
                match.group(3),
                match.group(4) if match.group(4) is not None else match.group(5),
            )
        found.setdefault(name, set()).add(value)
    return found


def env_example_problems(compose: str, example: str, script: str) -> list[str]:
    """Every disagreement between .env.example and the two files that read .env, sorted."""
    try:
        compose_defaults = defaults(compose)
    except ComposeVariableError as err:
        return [f"docker-compose.yml: {err}"]
    settings, problems = example_settings(example)
    read_by_script = {a or b for a, b in SCRIPT_READS.findall(script)}
    # COMPOSE_PROFILES is read from the environment before .env (settings.profiles_of).
    read_by_script |= set(re.findall(r"environ\.get\(\"([A-Z][A-Z0-9_]*)\"\)", script))
    fallbacks = script_defaults(script)
    for name, default in compose_defaults.items():
        if name not in settings:
            problems.append(f"{name}: read by docker-compose.yml, missing; add #{name}={default}")
        elif settings[name] != default:
            problems.append(
                f"{name}: .env.example shows {settings[name]!r}, docker-compose.yml's default is"
                f" {default!r}"
            )
        if name in fallbacks and fallbacks[name] != {default}:
            problems.append(
                f"{name}: the CLI falls back to {sorted(fallbacks[name])},"
                f" docker-compose.yml to {default!r}"
            )
    for name, value in settings.items():
        if name in compose_defaults:
            continue
        if name not in read_by_script:
            problems.append(
                f"{name}: in .env.example, read by neither docker-compose.yml nor"
                " the CLI; remove it"
            )
        elif name in fallbacks and value not in fallbacks[name]:
            problems.append(
                f"{name}: .env.example shows {value!r}, the CLI's defaults are"
                f" {sorted(fallbacks[name])}"
            )
    return sorted(problems)


def cli_text() -> str:
    """The CLI's source: the script and the package its steps call."""
    return SCRIPT.read_text() + "".join(path.read_text() for path in sorted(STACK.glob("*.py")))


def real_problems() -> list[str]:
    return env_example_problems(compose_text(), EXAMPLE.read_text(), cli_text())


def compose_text() -> str:
    """Both compose files: a variable read by either is in .env.example, with one default."""
    return COMPOSE.read_text() + SCALE.read_text()


def test_env_example_matches_compose_and_script() -> None:
    assert real_problems() == []


def test_the_parser_finds_what_compose_reads() -> None:
    """Compose itself lists the variables and their defaults; the raw-text parser must agree."""
    result = subprocess.run(
        [*COMPOSE_CONFIG, "--variables", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
    )
    listed = {name: v["DefaultValue"] for name, v in json.loads(result.stdout).items()}
    assert defaults(compose_text()) == listed


def planted(old: str, new: str, text: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("where", "old", "new", "problem"),
    [
        (
            "compose",
            "${DEMO_LOAD_RATE:-4}",
            "${DEMO_LOAD_RATE:-5}",
            "DEMO_LOAD_RATE: .env.example shows '4', docker-compose.yml's default is '5'",
        ),
        (
            "compose",
            "${KIBANA_MEMORY:-1g}",
            "${KIBANA_MEMORY:-1g}\n    cpus: ${KIBANA_CPUS:-1.5}",
            "KIBANA_CPUS: read by docker-compose.yml, missing; add #KIBANA_CPUS=1.5",
        ),
        (
            "example",
            "#DEMO_PAYMENTS=20000",
            "#DEMO_PAYMENTS=20000\n#DEMO_ORPHAN=1",
            "DEMO_ORPHAN: in .env.example, read by neither docker-compose.yml nor the CLI;"
            " remove it",
        ),
        (
            "example",
            "#DEMO_PAYMENTS=20000",
            "DEMO_PAYMENTS=20000",
            "DEMO_PAYMENTS: read by docker-compose.yml, missing; add #DEMO_PAYMENTS=20000",
        ),
        (
            "example",
            "#WAIT_TIMEOUT=600",
            "#WAIT_TIMEOUT=900",
            "WAIT_TIMEOUT: .env.example shows '900', the CLI's defaults are ['600']",
        ),
        (
            "script",
            'value("BIND_ADDRESS", "127.0.0.1")',
            'value("BIND_ADDRESS", "0.0.0.0")',
            "BIND_ADDRESS: the CLI falls back to ['0.0.0.0'], docker-compose.yml to '127.0.0.1'",
        ),
    ],
    ids=["changed-default", "missing", "orphan", "uncommented", "script-default", "script-copy"],
)
def test_a_planted_mismatch_is_reported(where: str, old: str, new: str, problem: str) -> None:
    texts = {"compose": COMPOSE, "example": EXAMPLE, "script": SCRIPT}
    changed = {key: path.read_text() for key, path in texts.items()}
    changed["compose"], changed["script"] = compose_text(), cli_text()
    changed[where] = planted(old, new, changed[where])
    assert problem in env_example_problems(
        changed["compose"], changed["example"], changed["script"]
    )


def test_a_nested_default_is_shown_as_written() -> None:
    compose = compose_text() + "\n# ${NEW_IMAGE:-repo/new:${NEW_VERSION:-1.0}}\n"
    example = EXAMPLE.read_text() + "#NEW_VERSION=1.0\n#NEW_IMAGE=repo/new:${NEW_VERSION:-1.0}\n"
    assert env_example_problems(compose, example, cli_text()) == []


def test_a_nested_default_shown_resolved_is_reported() -> None:
    compose = compose_text() + "\n# ${NEW_IMAGE:-repo/new:${NEW_VERSION:-1.0}}\n"
    example = EXAMPLE.read_text() + "#NEW_VERSION=1.0\n#NEW_IMAGE=repo/new:1.0\n"
    assert env_example_problems(compose, example, cli_text()) == [
        "NEW_IMAGE: .env.example shows 'repo/new:1.0', docker-compose.yml's default is"
        " 'repo/new:${NEW_VERSION:-1.0}'"
    ]


def test_a_bare_reference_in_compose_is_reported() -> None:
    compose = planted("${DEMO_LOAD_RATE:-4}", "$DEMO_LOAD_RATE", compose_text())
    problems = env_example_problems(compose, EXAMPLE.read_text(), cli_text())
    assert len(problems) == 1
    assert "bare $DEMO_LOAD_RATE" in problems[0]
