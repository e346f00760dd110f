"""A copy of the repository's tracked files, to break configs or run the stack without touching
the work tree."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tracked_files() -> list[Path]:
    """Files git tracks plus new, not-ignored ones (so uncommitted work is tested too)."""
    result = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [ROOT / line for line in result.stdout.splitlines() if (ROOT / line).is_file()]


def copy_repo(target: Path) -> Path:
    """Copy the tracked tree into `target`, keeping modes (scripts stay executable)."""
    for source in tracked_files():
        destination = target / source.relative_to(ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
    return target
