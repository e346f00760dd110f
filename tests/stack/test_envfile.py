"""The one reader of `.env`: values with the line they came from, errors that name it."""

from __future__ import annotations

from pathlib import Path

import pytest

from finance_stack.envfile import EnvFileError, Settings, parse


def test_parse_reads_compose_syntax_with_line_numbers() -> None:
    text = "# comment\n\nA=1\nexport B=\"two words\"\nC='x'\nD=plain # trailing\nE=\n"
    assert parse(text) == {
        "A": ("1", 3),
        "B": ("two words", 4),
        "C": ("x", 5),
        "D": ("plain", 6),
        "E": ("", 7),
    }


def test_a_line_compose_cannot_read_names_the_file_and_line() -> None:
    with pytest.raises(EnvFileError, match=r"^\.env:2: expected NAME=VALUE, got 'PROMETHEUS_PORT'"):
        parse("A=1\nPROMETHEUS_PORT\n")


def test_the_environment_wins_over_env_file_and_says_where(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=from-file\nB=file-only\n")
    settings = Settings(tmp_path, environ={"A": "from-env"})
    assert settings.get("A").origin == "environment" and settings.value("A") == "from-env"
    assert (settings.get("B").value, settings.get("B").origin) == ("file-only", ".env:2")
    missing = settings.get("C", "dflt")
    assert (missing.value, missing.origin, missing.is_set) == ("dflt", "default", False)


def test_a_bad_number_names_the_variable_and_its_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("#x\nWAIT_TIMEOUT=soon\nPORT=99999\n")
    settings = Settings(tmp_path, environ={})
    with pytest.raises(ValueError, match=r"^\.env:2: WAIT_TIMEOUT='soon' is not a whole number$"):
        settings.integer("WAIT_TIMEOUT", 600)
    with pytest.raises(ValueError, match=r"^\.env:3: PORT=99999 is out of range \(1 to 65535\)$"):
        settings.integer("PORT", 1, minimum=1, maximum=65535)
    assert settings.integer("UNSET", 7) == 7
