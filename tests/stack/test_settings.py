"""The settings every command shares: profiles remembered from the last start, traces' target."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from finance_stack import state
from finance_stack.envfile import Settings
from finance_stack.settings import profiles_of, resolve, shell


@pytest.mark.parametrize(
    ("environ", "dotenv", "remembered", "expected"),
    [
        ({}, "", None, ("demo,full", "default")),
        (
            {},
            "DATABASE_URL=postgresql://x@db/p\n",
            None,
            (
                "full,app-postgres",
                "default (DATABASE_URL or REDIS_URL set); app-postgres for DATABASE_URL (.env:1)",
            ),
        ),
        ({}, "COMPOSE_PROFILES=full\n", None, ("full", ".env:1")),
        # What the last start ran wins over .env and the default, until stop forgets it.
        ({}, "COMPOSE_PROFILES=full\n", "demo", ("demo", "the last start (.state/profiles)")),
        (
            {"COMPOSE_PROFILES": "traces"},
            "COMPOSE_PROFILES=full\n",
            "demo",
            ("traces", "environment"),
        ),
    ],
)
def test_profiles_come_from_the_environment_the_last_start_env_file_or_default(
    tmp_path: Path,
    environ: dict[str, str],
    dotenv: str,
    remembered: str | None,
    expected: tuple[str, str],
) -> None:
    (tmp_path / ".env").write_text(dotenv)
    if remembered is not None:
        state.write(tmp_path, state.PROFILES_FILE, remembered + "\n")
    assert profiles_of(Settings(tmp_path, environ=environ)) == expected


def test_stop_forgets_the_remembered_profiles(tmp_path: Path) -> None:
    state.write(tmp_path, state.PROFILES_FILE, "demo\n")
    state.write(tmp_path, state.PROJECT_FILE, "{}")
    state.clear(tmp_path)
    assert profiles_of(Settings(tmp_path, environ={})) == ("demo,full", "default")
    assert state.read(tmp_path, state.PROJECT_FILE) is None
    assert (tmp_path / ".state").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("environ", "dotenv", "chosen", "traces_to"),
    [
        ({}, "", False, "Jaeger's OTLP/HTTP endpoint"),
        ({"COMPOSE_PROFILES": "traces"}, "", False, "Jaeger's OTLP/HTTP endpoint"),
        ({"COMPOSE_PROFILES": "demo"}, "", False, "none"),
        ({"OTLP_ENDPOINT": "http://collector:4318"}, "", True, "http://collector:4318"),
        ({"OTLP_ENDPOINT": ""}, "", True, "none"),
        # Set in .env, even empty: left to Compose, which reads it there.
        ({}, "OTLP_ENDPOINT=\n", True, "none"),
    ],
)
def test_traces_go_to_jaeger_when_it_runs_unless_otlp_endpoint_is_set(
    tmp_path: Path, environ: dict[str, str], dotenv: str, chosen: bool, traces_to: str
) -> None:
    (tmp_path / ".env").write_text(dotenv)
    resolved = resolve(Settings(tmp_path, environ=environ))
    assert (resolved.otlp_chosen, resolved.traces_to) == (chosen, traces_to)


def test_the_shell_assignments_survive_eval(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COMPOSE_PROFILES=demo\nBIND_ADDRESS='127.0.0.1'\n")
    text = shell(resolve(Settings(tmp_path, environ={"WAIT_TIMEOUT": "5"})))
    show = 'printf "%s|%s|%s|%s" "$PROFILES" "$PROFILES_ORIGIN" "$WAIT_TIMEOUT" "$TRACES_TO"'
    echoed = subprocess.run(
        ["bash", "-c", f"{text}\n{show}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert echoed == "demo|.env:1|5|none"


@pytest.mark.parametrize(
    ("environ", "dotenv", "expected"),
    [
        # Both business URLs: both app exporters, the demo off.
        (
            {},
            "DATABASE_URL=postgresql://r:p@db/x\nREDIS_URL=redis://r:p@cache/0\n",
            "full,app-postgres,app-redis",
        ),
        # A monitoring URL alone asks for its exporter too.
        ({}, "REDIS_EXPORTER_URL=redis://m:p@cache/0\n", "demo,full,app-redis"),
        # Added to profiles the user chose, wherever they were chosen.
        ({"COMPOSE_PROFILES": "demo"}, "DATABASE_URL=postgresql://r@db/x\n", "demo,app-postgres"),
        ({}, "COMPOSE_PROFILES=full\nREDIS_URL=redis://cache\n", "full,app-redis"),
        # Already there, or every profile: nothing to add.
        ({"COMPOSE_PROFILES": "app-postgres,full"}, "DATABASE_URL=postgresql://r@db/x\n", None),
        ({"COMPOSE_PROFILES": "*"}, "DATABASE_URL=postgresql://r@db/x\n", None),
        # Empty values are unset.
        ({}, "DATABASE_URL=\nPOSTGRES_EXPORTER_DATABASE_URL=\n", "demo,full"),
    ],
)
def test_a_set_datastore_url_adds_its_app_exporter_profile(
    tmp_path: Path, environ: dict[str, str], dotenv: str, expected: str | None
) -> None:
    (tmp_path / ".env").write_text(dotenv)
    profiles, _ = profiles_of(Settings(tmp_path, environ=environ))
    assert profiles == (expected if expected is not None else environ["COMPOSE_PROFILES"])


def test_the_profiles_origin_names_the_variable_and_its_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("COMPOSE_PROFILES=full\n\nREDIS_URL=redis://u:s3cret@cache/0\n")
    profiles, origin = profiles_of(Settings(tmp_path, environ={}))
    assert (profiles, origin) == ("full,app-redis", ".env:1; app-redis for REDIS_URL (.env:3)")
    assert "s3cret" not in origin
