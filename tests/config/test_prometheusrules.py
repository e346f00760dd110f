"""deploy/kubernetes/prometheusrules.yaml: the rules Compose loads, as the PrometheusRule objects
a kube-prometheus user applies. Every rule group of prometheus/rules/ is there unchanged, in the
object named for its file, and every object has the shape of the monitoring.coreos.com/v1 CRD
(the fields of prometheus-operator's RuleGroup and Rule types). Drift against the generator is
tests/config/test_slo.py's byte-for-byte check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring.kubernetes import PROMETHEUS_RULES, RULE_LABELS, object_name
from support.repo import ROOT

RULES = sorted((ROOT / "prometheus" / "rules").rglob("*.yml"))
# prometheus-operator pkg/apis/monitoring/v1/prometheusrule_types.go: RuleGroup and Rule.
GROUP_FIELDS = {
    "name",
    "labels",
    "interval",
    "query_offset",
    "rules",
    "partial_response_strategy",
    "limit",
}
RULE_FIELDS = {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DURATION = re.compile(
    r"0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?"
)


def objects() -> list[dict[str, Any]]:
    return list(yaml.safe_load_all((ROOT / PROMETHEUS_RULES).read_text()))


def by_name() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects()}


@pytest.mark.parametrize("path", RULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_rule_group_is_in_its_object_unchanged(path: Path) -> None:
    relative = path.relative_to(ROOT)
    found = by_name().get(object_name(relative))
    assert found is not None, f"{relative}: no PrometheusRule; run: python -m monitoring generate"
    assert found["metadata"]["annotations"] == {"ai-finance/source": str(relative)}
    assert found["spec"]["groups"] == yaml.safe_load(path.read_text())["groups"]


def test_one_object_per_rules_file_and_no_other() -> None:
    names = [o["metadata"]["name"] for o in objects()]
    assert sorted(names) == sorted(object_name(p.relative_to(ROOT)) for p in RULES)
    assert len(set(names)) == len(names)


def test_object_names_follow_the_file_names() -> None:
    assert object_name(Path("prometheus/rules/slo/payment.rules.yml")) == "ai-finance-slo-payment"
    assert object_name(Path("prometheus/rules/business.rules.yml")) == "ai-finance-business"


def _shape_problems(document: dict[str, Any]) -> list[str]:
    """What the CRD's schema would refuse in one object, sorted."""
    problems = []
    name = document["metadata"]["name"]
    if document.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"{name}: apiVersion {document.get('apiVersion')}")
    if document.get("kind") != "PrometheusRule":
        problems.append(f"{name}: kind {document.get('kind')}")
    if not DNS_1123.fullmatch(name) or len(name) > 253:
        problems.append(f"{name}: not a DNS-1123 name")
    if set(document) != {"apiVersion", "kind", "metadata", "spec"} or set(document["spec"]) != {
        "groups"
    }:
        problems.append(f"{name}: unexpected top-level or spec fields")
    groups = document["spec"]["groups"]
    if len({g["name"] for g in groups}) != len(groups):
        problems.append(f"{name}: group names repeat")
    for group in groups:
        problems += [
            f"{name}/{group['name']}: field {k}" for k in sorted(set(group) - GROUP_FIELDS)
        ]
        if "interval" in group and not DURATION.fullmatch(str(group["interval"])):
            problems.append(f"{name}/{group['name']}: interval {group['interval']}")
        for rule in group["rules"]:
            label = rule.get("alert") or rule.get("record")
            problems += [f"{name}/{label}: field {k}" for k in sorted(set(rule) - RULE_FIELDS)]
            if ("alert" in rule) == ("record" in rule) or not str(rule.get("expr", "")).strip():
                problems.append(f"{name}/{label}: needs exactly one of alert/record, and expr")
            if "for" in rule and not DURATION.fullmatch(str(rule["for"])):
                problems.append(f"{name}/{label}: for {rule['for']}")
            values = [
                *(rule.get("labels") or {}).values(),
                *(rule.get("annotations") or {}).values(),
            ]
            problems += [
                f"{name}/{label}: non-string value {v!r}" for v in values if not isinstance(v, str)
            ]
    return sorted(problems)


def test_every_object_has_the_crds_shape() -> None:
    assert [p for o in objects() for p in _shape_problems(o)] == []


def test_a_wrong_shape_is_reported() -> None:
    planted = objects()[0]
    planted["spec"]["groups"][0]["rules"][0]["severity"] = "critical"
    assert any("field severity" in p for p in _shape_problems(planted))


def test_every_object_carries_the_selection_labels() -> None:
    assert all(o["metadata"]["labels"] == RULE_LABELS for o in objects())
