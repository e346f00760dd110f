"""The rule set of logs/rules.yml as values: indices, routes with their conditions, redaction
classes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitoring.logs.redaction import Redaction


@dataclass(frozen=True)
class LogIndex:
    """One family of daily indices: its name, its ILM policy, and what it holds."""

    name: str
    policy: str
    title: str

    @property
    def pattern(self) -> str:
        """The daily indices' wildcard, as templates, data views and roles name them."""
        return f"{self.name}-*"


@dataclass(frozen=True)
class Condition:
    """One test on one field: `op` is in, contains or exists."""

    field: str
    op: str
    values: tuple[str | int, ...] = ()

    @property
    def reference(self) -> str:
        """The Logstash field reference: [http][response][status_code]."""
        return "".join(f"[{part}]" for part in self.field.split("."))


@dataclass(frozen=True)
class Route:
    """Events matching any condition also go to `index`."""

    index: str
    description: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class RedactionClass:
    """A class of secret or personal data: its patterns (as written) and its replacement."""

    name: str
    description: str
    text: str | None
    key: str | None
    replacement: str
    luhn: bool

    def compiled(self) -> Redaction:
        """The class as the redaction module holds it."""
        text = re.compile(self.text) if self.text is not None else None
        key = re.compile(self.key) if self.key is not None else None
        return Redaction(self.name, text, key, self.replacement, self.luhn)


@dataclass(frozen=True)
class Rules:
    """The whole rule set."""

    indices: tuple[LogIndex, ...]
    general_index: str
    deadletter_index: str
    routes: tuple[Route, ...]
    classes: tuple[RedactionClass, ...]

    @property
    def redactions(self) -> tuple[Redaction, ...]:
        """The classes, compiled."""
        return tuple(rule.compiled() for rule in self.classes)
