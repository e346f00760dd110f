"""Settings of the stack: the environment, then the project's `.env`, and where each came from.

Compose reads `.env` itself; this is the one reader of it for the stack's own commands, so an
error can name the file and line a value came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    """One variable's value and its origin: "environment", ".env:LINE" or "default"."""

    name: str
    value: str
    origin: str

    @property
    def is_set(self) -> bool:
        """Set by the user (environment or .env), even to an empty value."""
        return self.origin != "default"


class EnvFileError(ValueError):
    """A line of .env that Compose would not read either."""


def parse(text: str, file: str = ".env") -> dict[str, tuple[str, int]]:
    """NAME -> (value, line) of a Compose `.env` text: NAME=VALUE lines, comments, quotes."""
    values: dict[str, tuple[str, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum() or name[0].isdigit():
            raise EnvFileError(f"{file}:{number}: expected NAME=VALUE, got {raw.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = (value, number)
    return values


class Settings:
    """Look variables up: the environment, then `.env` in the project folder, then a default."""

    def __init__(self, root: Path, environ: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.environ = dict(os.environ if environ is None else environ)
        path = root / ".env"
        self.env_file: dict[str, tuple[str, int]] = {}
        if path.is_file():
            self.env_file = parse(path.read_text(encoding="utf-8"), str(path.name))

    def get(self, name: str, default: str = "") -> Setting:
        """The setting NAME with its origin."""
        if name in self.environ:
            return Setting(name, self.environ[name], "environment")
        if name in self.env_file:
            value, line = self.env_file[name]
            return Setting(name, value, f".env:{line}")
        return Setting(name, default, "default")

    def value(self, name: str, default: str = "") -> str:
        """Only the value of NAME."""
        return self.get(name, default).value

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        """An integer setting; a bad value raises ValueError naming the variable and its origin."""
        setting = self.get(name, str(default))
        try:
            number = int(setting.value)
        except ValueError:
            raise ValueError(
                f"{setting.origin}: {name}={setting.value!r} is not a whole number"
            ) from None
        if number < minimum or (maximum is not None and number > maximum):
            upper = f" to {maximum}" if maximum is not None else " or more"
            raise ValueError(
                f"{setting.origin}: {name}={setting.value} is out of range ({minimum}{upper})"
            )
        return number

    def compose_environ(self) -> dict[str, str]:
        """The environment for a docker compose call (Compose reads .env itself)."""
        return dict(self.environ)
