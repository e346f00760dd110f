"""PromQL helpers shared by the rule and dashboard checks: parse and walk expressions, and the
metrics something really produces (exporters, recording rules, third-party list, the
instrumentation contract)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import promql_parser
import yaml

from finance_exporter import selfmetrics
from finance_exporter.domains import DOMAINS
from support.repo import ROOT

RULES_DIR = ROOT / "prometheus" / "rules"
THIRD_PARTY = ROOT / "monitoring" / "third_party_metrics.yml"
INSTRUMENTATION = ROOT / "docs" / "instrumentation.md"
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def walk(expr: promql_parser.Expr) -> list[promql_parser.Expr]:
    nodes: list[promql_parser.Expr] = []

    def visit(node: promql_parser.Expr) -> bool:
        nodes.append(node)
        return True

    promql_parser.walk(expr, visit)
    return nodes


def exporter_metrics() -> set[str]:
    """Series the business exporters expose: their domains' metrics and their self-metrics."""
    names = set()
    for specs in DOMAINS.values():
        for spec in specs:
            metric = spec.metric
            if metric.kind == "histogram":
                names |= {metric.name + suffix for suffix in HISTOGRAM_SERIES}
            else:
                names.add(metric.name)
    names |= {
        value
        for key, value in vars(selfmetrics).items()
        if key.isupper() and isinstance(value, str) and value.startswith("finance_exporter_")
    }
    return names


def recording_rules() -> dict[str, list[str]]:
    """The expressions of every recording rule under prometheus/rules/ (hand-written and
    generated), by the name they record (one name may be recorded by several rules)."""
    rules: dict[str, list[str]] = {}
    for path in sorted(RULES_DIR.rglob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        for group in data.get("groups", []):
            for rule in group["rules"]:
                if "record" in rule:
                    rules.setdefault(str(rule["record"]), []).append(str(rule["expr"]))
    return rules


def recorded_metrics() -> set[str]:
    """Names recorded by the rules under prometheus/rules/ (hand-written and generated)."""
    return set(recording_rules())


def third_party_metrics() -> set[str]:
    data = yaml.safe_load(THIRD_PARTY.read_text())
    return {str(name) for entry in data.values() for name in entry["metrics"]}


# A table row whose first cell is a metric name in backticks, then its type.
_CONTRACT_ROW = re.compile(r"^\|\s*`([a-zA-Z_:][a-zA-Z0-9_:]*)`\s*\|\s*(\w+)\s*\|", re.MULTILINE)


def instrumented_metrics() -> set[str]:
    """The platform services' metrics that docs/instrumentation.md requires or allows."""
    names = set()
    for name, kind in _CONTRACT_ROW.findall(INSTRUMENTATION.read_text()):
        if kind == "histogram":
            names |= {name + suffix for suffix in HISTOGRAM_SERIES}
        else:
            names.add(name)
    return names


def produced_metrics() -> set[str]:
    return exporter_metrics() | recorded_metrics() | third_party_metrics() | instrumented_metrics()


def selector_names(node: promql_parser.VectorSelector) -> set[str]:
    """Metric names a selector can match; an unresolvable one is returned as its own text."""
    if node.name:
        return {node.name}
    groups = [node.matchers.matchers, *node.matchers.or_matchers]
    names: set[str] = set()
    for group in groups:
        matchers = [m for m in group if m.name == "__name__"]
        alternatives = [m.value.split("|") for m in matchers if m.op == promql_parser.MatchOp.Re]
        exact = [[m.value] for m in matchers if m.op == promql_parser.MatchOp.Equal]
        candidates = (exact or alternatives or [[]])[0]
        if not candidates or not all(METRIC_NAME.match(c) for c in candidates):
            return {str(node)}
        names |= set(candidates)
    return names


@dataclass(frozen=True)
class ExprFacts:
    """What an expression reads: metric names and the ranges of its range selectors."""

    metrics: frozenset[str]
    ranges: tuple[timedelta, ...]


def inspect(expr: str) -> ExprFacts:
    metrics: set[str] = set()
    ranges: list[timedelta] = []
    for node in walk(promql_parser.parse(expr)):
        if isinstance(node, promql_parser.VectorSelector):
            metrics |= selector_names(node)
        elif isinstance(node, promql_parser.MatrixSelector):
            ranges.append(node.range)
        elif isinstance(node, promql_parser.SubqueryExpr) and node.range is not None:
            ranges.append(node.range)
    return ExprFacts(frozenset(metrics), tuple(ranges))
