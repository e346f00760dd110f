"""Redaction of secrets and personal data in a log record: the classes of logs/rules.yml.

The source of the redaction module that `python -m monitoring generate` writes into each Python
package (finance_exporter/redaction.py, finance_demo/platform/redaction.py): the text of this
file, with CLASSES filled in from logs/rules.yml. Standard library only, because the packages
are built from their own folders and the demo does not install PyYAML. The Logstash pipeline
does the same in Ruby (monitoring/logs/ renders both from one rule set).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

_NOT_DIGIT = re.compile("[^0-9]")


class Redaction(NamedTuple):
    """One class: what it matches in text and in field names, and what replaces it."""

    name: str
    text: re.Pattern[str] | None
    key: re.Pattern[str] | None
    replacement: str
    luhn: bool


CLASSES: tuple[Redaction, ...] = ()


def luhn(digits: str) -> bool:
    """True if the digits pass the Luhn check (every card number does)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def redact_text(text: str, classes: Sequence[Redaction] = CLASSES) -> str:
    """`text` with every match of every class replaced, in the order of the classes."""
    for rule in classes:
        if rule.text is not None:
            text = rule.text.sub(_Replace(rule), text)
    return text


class _Replace:
    """What replaces a match of `rule`: its group 1 (the label, if any) and the replacement, or
    the match itself when a Luhn check fails."""

    def __init__(self, rule: Redaction) -> None:
        self.rule = rule

    def __call__(self, match: re.Match[str]) -> str:
        kept = (match.group(1) or "") if match.re.groups else ""
        if self.rule.luhn and not luhn(_NOT_DIGIT.sub("", match.group(0)[len(kept) :])):
            return match.group(0)
        return kept + self.rule.replacement


def secret_field(key: str, classes: Sequence[Redaction] = CLASSES) -> Redaction | None:
    """The first class whose key pattern matches the field name or a dotted part of it."""
    parts = key.split(".")
    for rule in classes:
        if rule.key is not None and any(rule.key.search(part) for part in parts):
            return rule
    return None


def redact(value: object, classes: Sequence[Redaction] = CLASSES) -> object:
    """`value` with every string redacted, at any depth; a secret field's whole value replaced.
    Numbers, booleans and None are kept; any other object becomes its redacted str(), as
    json.dumps(default=str) would have written it."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {key: _field(str(key), item, classes) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, classes) for item in value]
    return redact_text(value if isinstance(value, str) else str(value), classes)


def _field(key: str, value: object, classes: Sequence[Redaction]) -> object:
    rule = secret_field(key, classes)
    return rule.replacement if rule is not None else redact(value, classes)
