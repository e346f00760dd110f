"""The repository's alerting rules as data, and the drill scenarios' alerts in them."""

from __future__ import annotations

from typing import Any

import yaml

from finance_stack.scenarios import Scenario
from support.repo import ROOT

# Labels an alert gets from its series, not from its rule: routing reads these.
SERIES_LABELS = {"provider"}


def _rules() -> list[dict[str, Any]]:
    found = []
    for path in sorted((ROOT / "prometheus" / "rules").rglob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            found += [rule for rule in group["rules"] if "alert" in rule]
    return found


RULES = _rules()


def rule_of(scenario: Scenario) -> dict[str, Any]:
    """The one alerting rule the scenario's alert comes from."""
    ours = [
        rule
        for rule in RULES
        if rule["alert"] == scenario.alert
        and all(
            rule["labels"].get(name) == value
            for name, value in scenario.labels.items()
            if name not in SERIES_LABELS
        )
    ]
    assert len(ours) == 1, f"{scenario.name}: {len(ours)} rules match"
    return ours[0]


def full_labels(scenario: Scenario) -> dict[str, str]:
    """The labels the alert reaches Alertmanager with: the rule's own and the series'."""
    rule = rule_of(scenario)
    static = {k: str(v) for k, v in rule["labels"].items() if "{{" not in str(v)}
    return {"alertname": scenario.alert, **static, **scenario.labels}
