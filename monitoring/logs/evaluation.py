"""The rules applied to an event in Python, the way logstash/pipeline/main.conf applies them:
nested into ECS objects, redacted, then routed. The tests' reference for the Ruby filter."""

from __future__ import annotations

from typing import Any

from monitoring.logs import redaction
from monitoring.logs.model import Condition, Rules

CONFLICT_TAG = "_ecs_conflict"


def nest(event: dict[str, Any]) -> dict[str, Any]:
    """ECS objects from dotted top-level keys, in sorted key order ({"log.level": x} becomes
    {"log": {"level": x}}). A key that cannot be nested (a part of it is already a value, or it
    has an empty part or a bracket) stays as it is, and the event is tagged _ecs_conflict."""
    out = {key: value for key, value in event.items() if "." not in key}
    for key in sorted(k for k in event if "." in k):
        parts = key.split(".")
        node: Any = out
        fits = not any(part == "" or "[" in part or "]" in part for part in parts)
        for part in parts[:-1] if fits else ():
            child = node.get(part)
            if child is not None and not isinstance(child, dict):
                fits = False
                break
            node = child if child is not None else {}
        if not fits:
            out[key] = event[key]
            tags = out.get("tags")
            out["tags"] = [*(tags if isinstance(tags, list) else []), CONFLICT_TAG]
            continue
        node = out
        for part in parts[:-1]:  # copied on the way down: the caller's event is not changed
            node[part] = dict(node[part]) if isinstance(node.get(part), dict) else {}
            node = node[part]
        node[parts[-1]] = event[key]
    return out


def lookup(event: dict[str, Any], field: str) -> Any:
    """The value at a dotted field of a nested event, or None where the path ends early."""
    node: Any = event
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _as_logstash_text(value: Any) -> str | None:
    """What Logstash's toString gives for a scalar: true/false, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def matches(condition: Condition, event: dict[str, Any]) -> bool:
    """The condition on a nested event, with the Logstash operator's semantics (8.18
    EventCondition: FieldInConstantList, ConstantStringInField, FieldTruthy)."""
    found = lookup(event, condition.field)
    if condition.op == "exists":
        text = _as_logstash_text(found)
        return found is not None and text not in ("", "false")
    if condition.op == "in":
        text = _as_logstash_text(found)
        return text is not None and text in {str(v) for v in condition.values}
    if isinstance(found, list):
        return any(value in found for value in condition.values)
    return isinstance(found, str) and any(str(value) in found for value in condition.values)


def evaluate(rules: Rules, event: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The indices (without the date) an event is written to, and the event as indexed:
    nested, then redacted, then routed, as logstash/pipeline/main.conf does it."""
    nested = nest(event)
    redacted = redaction.redact(nested, rules.redactions)
    assert isinstance(redacted, dict)
    indices = [rules.general_index]
    for route in rules.routes:
        if any(matches(condition, redacted) for condition in route.conditions):
            indices.append(route.index)
    return tuple(indices), redacted
