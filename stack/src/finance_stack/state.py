"""What the last `start` chose, kept in the project's `.state/` folder (git-ignored).

`start` writes the profiles it ran and the rendered project; `stop` clears them. Every later
command reads them, so a plain `health` or `restart` after `COMPOSE_PROFILES=demo start` acts on
the demo stack, not on the default one.
"""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR = ".state"
PROFILES_FILE = "profiles"
PROJECT_FILE = "project.json"


def state_dir(root: Path) -> Path:
    """The state folder of a project (created, mode 0700)."""
    folder = root / STATE_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def write(root: Path, name: str, text: str) -> Path:
    """Write a state file atomically: written aside, then renamed."""
    path = state_dir(root) / name
    partial = path.with_name(f".{name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def read(root: Path, name: str) -> str | None:
    """A state file's text, or None when the last start left none."""
    try:
        return (root / STATE_DIR / name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def clear(root: Path) -> None:
    """Forget the last start (after `stop`)."""
    for name in (PROFILES_FILE, PROJECT_FILE):
        (root / STATE_DIR / name).unlink(missing_ok=True)
