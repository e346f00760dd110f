"""The steps start-monitoring.sh calls: each reads the project start rendered, once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from finance_stack import commands, state
from finance_stack.compose import Project, Service
from finance_stack.envfile import Settings
from support.repo import copy_repo


def clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DEMO_"))}


def test_a_step_reuses_the_project_start_rendered_for_the_same_profiles(tmp_path: Path) -> None:
    kept = Project("kept", "demo", {"prometheus": Service("prometheus", "p", None, False)})
    state.write(tmp_path, state.PROJECT_FILE, kept.to_json())
    # No compose file in tmp_path: a fresh rendering would fail, so this is the kept one.
    assert commands.project_for(tmp_path, "demo", Settings(tmp_path, environ={})) == kept


def test_other_profiles_render_the_compose_file_afresh(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    state.write(root, state.PROJECT_FILE, Project("kept", "demo", {}).to_json())
    fresh = commands.project_for(root, "demo,traces", Settings(root, environ=clean_environ()))
    assert fresh.profiles == "demo,traces" and "jaeger" in fresh.services


def test_targets_dry_run_prints_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_repo(tmp_path / "repo")
    monkeypatch.delenv("COMPOSE_PROFILES", raising=False)
    argv = ["--root", str(root), "--profiles", "demo"]
    assert commands.cmd_targets([*argv, "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sorted(printed) == ["platform", "postgres", "redis"]
    assert list((root / "prometheus" / "targets").glob("*.json")) == []
    assert commands.cmd_targets(argv) == 0
    assert sorted(p.stem for p in (root / "prometheus" / "targets").glob("*.json")) == sorted(
        printed
    )


def test_remember_and_forget_keep_the_profiles_between_commands(tmp_path: Path) -> None:
    argv = ["--root", str(tmp_path), "--profiles", "demo,traces"]
    assert commands.cmd_remember(argv) == 0
    assert state.read(tmp_path, state.PROFILES_FILE) == "demo,traces\n"
    assert commands.cmd_forget(argv) == 0
    assert state.read(tmp_path, state.PROFILES_FILE) is None
