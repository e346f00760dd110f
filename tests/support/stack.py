"""Run `python3 -m finance_stack` the way its image does: the standard library and the package."""

from __future__ import annotations

import os
import sys

from support.repo import ROOT

STACK_SRC = ROOT / "stack" / "src"


def stdlib_python(*args: str) -> list[str]:
    """An argv for this Python without site-packages (-S, -s): only the stdlib and PYTHONPATH."""
    return [sys.executable, "-S", "-s", *args]


def stdlib_env() -> dict[str, str]:
    """A minimal environment whose PYTHONPATH is the package's source folder alone."""
    return {"PATH": os.defpath, "PYTHONPATH": str(STACK_SRC), "LC_ALL": "C.UTF-8"}
