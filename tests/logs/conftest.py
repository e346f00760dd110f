"""The rule set of logs/rules.yml, and a writer of broken copies of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitoring import logs


@pytest.fixture(scope="session")
def rules() -> logs.Rules:
    return logs.load()


@pytest.fixture
def broken_rules(tmp_path: Path) -> Callable[[str, str], Path]:
    """A copy of logs/rules.yml with `old` replaced by `new` (which must be there once)."""

    def write(old: str, new: str) -> Path:
        text = (logs.ROOT / logs.RULES).read_text(encoding="utf-8")
        assert text.count(old) == 1, old
        path = tmp_path / "rules.yml"
        path.write_text(text.replace(old, new), encoding="utf-8")
        return path

    return write
