"""The project's state folder: written atomically, private, cleared by stop."""

from __future__ import annotations

from pathlib import Path

from finance_stack import state


def test_state_files_are_written_whole_and_cleared(tmp_path: Path) -> None:
    path = state.write(tmp_path, state.PROFILES_FILE, "demo\n")
    assert path == tmp_path / ".state" / "profiles"
    assert state.read(tmp_path, state.PROFILES_FILE) == "demo\n"
    assert [p.name for p in (tmp_path / ".state").iterdir()] == ["profiles"]  # no partial left
    assert (tmp_path / ".state").stat().st_mode & 0o777 == 0o700
    state.write(tmp_path, state.PROJECT_FILE, "{}")
    state.clear(tmp_path)
    assert state.read(tmp_path, state.PROFILES_FILE) is None
    assert state.read(tmp_path, state.PROJECT_FILE) is None
