"""Validation of request fields: a bad field is the caller's error (400), named in the reply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from finance_demo.platform.http import HttpError


def choice(body: Mapping[str, object], key: str, allowed: Sequence[str]) -> str:
    """body[key], which must be one of `allowed`."""
    value = body.get(key)
    if not isinstance(value, str) or value not in allowed:
        raise HttpError(400, f"{key} must be one of {', '.join(sorted(allowed))}")
    return value


def text(body: Mapping[str, object], key: str, max_length: int = 200) -> str:
    """body[key], a non-empty string of at most `max_length` characters."""
    value = body.get(key)
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise HttpError(400, f"{key} must be a string of 1 to {max_length} characters")
    return value


def number(body: Mapping[str, object], key: str, low: float, high: float) -> float:
    """body[key], a number from `low` to `high`."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise HttpError(400, f"{key} must be a number from {low} to {high}")
    return float(value)


def identifier(values: Mapping[str, object], key: str) -> int:
    """values[key], a positive integer id (a path parameter or a body field)."""
    value = values.get(key)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise HttpError(400, f"{key} must be a positive integer id")
    return value
