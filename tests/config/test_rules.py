"""Alert rules: promtool accepts them and their unit tests pass, every alert has a firing and a
quiet case and the same shape, the application thresholds are the inventory's, and every metric
a rule reads is produced by something real."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from monitoring.inventory import Inventory, load
from support.promql import (
    exporter_metrics,
    inspect,
    instrumented_metrics,
    produced_metrics,
    third_party_metrics,
    walk,
)
from support.repo import ROOT

RULES_DIR = ROOT / "prometheus" / "rules"
TESTS_DIR = ROOT / "prometheus" / "tests"
RUNBOOKS_DIR = ROOT / "docs" / "runbooks"

CATEGORIES = ("meta", "application", "infrastructure", "business", "trading", "security")
# The hand-written rules, one file per category; the generated SLO rules (rules/slo/) have their
# own shape and tests (tests/config/test_slo.py) and join here only for the metric contract.
HAND_WRITTEN = tuple(RULES_DIR / f"{category}.rules.yml" for category in CATEGORIES)
ALL_RULE_FILES = tuple(sorted(RULES_DIR.rglob("*.yml")))

SEVERITIES = {"critical", "warning", "info"}
REQUIRED_LABELS = ("severity", "team", "category", "service")
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url")
# A literal (`payment`) or built from the series' labels (`{{ $labels.exporter }}-exporter`).
SERVICE_LABEL = re.compile(r"^(?:[a-z0-9-]|\{\{ \$labels\.[a-z_]+ \}\})+$")
SERVICE_TEMPLATE = "{{ $labels.service }}"
# Four 15s scrape intervals: a shorter range can hold fewer than two samples after a miss.
MIN_RANGE = timedelta(minutes=1)
COMPARISONS = {">", "<", ">=", "<=", "==", "!="}
# The dead man's switch always fires: it has no quiet case and no `for`.
ALWAYS_FIRING = "Watchdog"

PROMTOOL = shutil.which("promtool")


@dataclass(frozen=True)
class Rule:
    """One rule of a rules file, with the file it came from."""

    path: Path
    raw: dict[str, Any]

    @property
    def alert(self) -> str | None:
        return self.raw.get("alert")

    @property
    def labels(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.raw.get("labels") or {}).items()}

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.raw.get("annotations") or {}).items()}

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}: {self.alert or self.raw.get('record')}"


def rules_of(path: Path) -> list[Rule]:
    data = yaml.safe_load(path.read_text()) or {}
    return [Rule(path, rule) for group in data.get("groups", []) for rule in group["rules"]]


def alerts_of(paths: tuple[Path, ...]) -> list[Rule]:
    return [rule for path in paths for rule in rules_of(path) if rule.alert]


def unit_test_file_of(rules_file: Path) -> Path:
    return TESTS_DIR / rules_file.name.replace(".rules.yml", ".rules.test.yml")


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load()


# ---- promtool ----------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL, "promtool not found: tests/run.sh builds it (pinned-go.sh)"
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.parametrize("path", ALL_RULE_FILES, ids=lambda p: str(p.relative_to(RULES_DIR)))
def test_rules_file_passes_promtool_check(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rules_file", HAND_WRITTEN, ids=lambda p: p.name)
def test_rules_unit_tests_pass(rules_file: Path) -> None:
    test_file = unit_test_file_of(rules_file)
    assert test_file.is_file(), f"{test_file.relative_to(ROOT)} is missing"
    tested = yaml.safe_load(test_file.read_text())["rule_files"]
    assert tested == [f"../rules/{rules_file.name}"], f"{test_file.name} tests {tested}"
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hand_written_rules_are_one_file_per_category() -> None:
    on_disk = {p.name for p in RULES_DIR.glob("*.yml")}
    assert on_disk == {p.name for p in HAND_WRITTEN}


# ---- coverage: a firing and a quiet case for every alert ---------------------------------------


@dataclass
class Cases:
    """What a promtool test file asserts: the labels of expected alerts, and quiet alert names."""

    firing: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    quiet: set[str] = field(default_factory=set)


def cases_of(test_file: Path) -> Cases:
    cases = Cases()
    for group in yaml.safe_load(test_file.read_text()).get("tests", []):
        for case in group.get("alert_rule_test") or []:
            name = case["alertname"]
            expected = case.get("exp_alerts") or []
            if not expected:
                cases.quiet.add(name)
            for alert in expected:
                labels = {str(k): str(v) for k, v in (alert.get("exp_labels") or {}).items()}
                cases.firing.setdefault(name, []).append(labels)
    return cases


def static_labels(rule: Rule) -> dict[str, str]:
    """The rule's labels that do not depend on the series (no template)."""
    return {k: v for k, v in rule.labels.items() if "{{" not in v}


def coverage_gaps(rules_file: Path) -> list[str]:
    cases = cases_of(unit_test_file_of(rules_file))
    gaps = []
    for rule in alerts_of((rules_file,)):
        assert rule.alert
        wanted = static_labels(rule)
        fired = cases.firing.get(rule.alert, [])
        # Several rules may share an alert name (one per service, one per severity): each needs
        # a firing case of its own, told apart by its literal labels.
        if not any(wanted.items() <= labels.items() for labels in fired):
            gaps.append(f"{rule.where} {wanted}: no case where it fires")
        if rule.alert != ALWAYS_FIRING and rule.alert not in cases.quiet:
            gaps.append(f"{rule.where}: no case where it stays quiet (exp_alerts: [])")
    return sorted(set(gaps))


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    gaps = [gap for path in HAND_WRITTEN for gap in coverage_gaps(path)]
    assert not gaps, "alerts without promtool cases:\n" + "\n".join(gaps)


# ---- shape: labels, annotations, links ----------------------------------------------------------


def dashboard_uids(url: str, inventory: Inventory) -> list[str]:
    """The dashboard uids a dashboard_url can resolve to (one per service if templated)."""
    prefix = f"{inventory.grafana_url}/d/"
    if not url.startswith(prefix):
        return [url]
    uid = url.removeprefix(prefix)
    if SERVICE_TEMPLATE in uid:
        return [uid.replace(SERVICE_TEMPLATE, s.name) for s in inventory.services]
    return [uid]


def shape_problems(rule: Rule, category: str, inventory: Inventory) -> Iterator[str]:
    labels, annotations = rule.labels, rule.annotations
    for name in REQUIRED_LABELS:
        if not labels.get(name):
            yield f"label {name} is missing"
    for name in REQUIRED_ANNOTATIONS:
        if not annotations.get(name):
            yield f"annotation {name} is missing"
    if labels.get("severity", "critical") not in SEVERITIES:
        yield f"severity {labels['severity']!r} is not one of {sorted(SEVERITIES)}"
    if labels.get("team", "sre") not in inventory.teams:
        yield f"team {labels['team']!r} is not a team of the inventory"
    if labels.get("category", category) != category:
        yield f"category {labels['category']!r} in {category}.rules.yml"
    if not SERVICE_LABEL.match(labels.get("service", "x")):
        yield f"service {labels['service']!r} is neither a name nor {{{{ $labels.x }}}}"
    for name, value in labels.items():
        if "$value" in value:
            yield f"label {name} uses $value (a new series at every change)"
    runbook = f"{inventory.runbook_base}/{rule.alert}.md"
    if annotations.get("runbook_url", runbook) != runbook:
        yield f"runbook_url is not {runbook}"
    if not (RUNBOOKS_DIR / f"{rule.alert}.md").is_file():
        yield f"docs/runbooks/{rule.alert}.md does not exist"
    for uid in dashboard_uids(annotations.get("dashboard_url", ""), inventory):
        if uid not in inventory.dashboard_uids():
            yield f"dashboard_url leads to {uid!r}, not a dashboard of the inventory"
    if rule.alert == ALWAYS_FIRING and "for" in rule.raw:
        yield "the always-firing Watchdog must not wait (`for`)"
    if rule.alert != ALWAYS_FIRING and not rule.raw.get("for"):
        yield "no `for`: one bad scrape would notify"


def test_every_alert_has_the_same_shape(inventory: Inventory) -> None:
    problems = [
        f"{rule.where}: {problem}"
        for path in HAND_WRITTEN
        for rule in alerts_of((path,))
        for problem in shape_problems(rule, path.name.removesuffix(".rules.yml"), inventory)
    ]
    assert not problems, "\n".join(problems)


def test_every_runbook_belongs_to_an_alert() -> None:
    alerts = {rule.alert for rule in alerts_of(ALL_RULE_FILES)}
    orphans = sorted(p.name for p in RUNBOOKS_DIR.glob("*.md") if p.stem not in alerts)
    assert not orphans, f"runbooks of no alert: {orphans}"


def test_the_shape_check_catches_a_bad_alert(inventory: Inventory) -> None:
    rule = Rule(
        RULES_DIR / "meta.rules.yml",
        {
            "alert": "NoSuchAlert",
            "expr": "up == 0",
            "labels": {"severity": "page", "team": "nobody", "category": "meta"},
            "annotations": {"summary": "s", "dashboard_url": "http://localhost:3001/d/nope"},
        },
    )
    problems = "\n".join(shape_problems(rule, "meta", inventory))
    for expected in (
        "label service is missing",
        "annotation runbook_url is missing",
        "severity 'page'",
        "team 'nobody'",
        "docs/runbooks/NoSuchAlert.md does not exist",
        "'nope', not a dashboard",
        "no `for`",
    ):
        assert expected in problems


# ---- the application alerts use the inventory's thresholds --------------------------------------

# Alert name -> the inventory field its threshold comes from.
APPLICATION_THRESHOLDS = {
    "ServiceHighErrorRatio": "error_rate",
    "ServiceHighLatency": "latency_seconds",
}


def thresholds(expr: promql_parser.Expr) -> set[float]:
    """The numbers the expression's comparisons compare with (`x > 0.01` gives 0.01)."""
    return {
        node.rhs.val
        for node in walk(expr)
        if isinstance(node, promql_parser.BinaryExpr)
        and str(node.op) in COMPARISONS
        and isinstance(node.rhs, promql_parser.NumberLiteral)
    }


def service_filters(expr: promql_parser.Expr) -> set[str]:
    """The `service="..."` value of every selector ("" for a selector without one)."""
    values = set()
    for node in walk(expr):
        if isinstance(node, promql_parser.VectorSelector):
            matched = [
                m.value
                for m in node.matchers.matchers
                if m.name == "service" and m.op == promql_parser.MatchOp.Equal
            ]
            values.add(matched[0] if matched else "")
    return values


def test_application_alerts_use_the_inventory_of_each_service(inventory: Inventory) -> None:
    problems = []
    by_alert: dict[str, list[str]] = {}
    services = {s.name: s for s in inventory.services}
    for rule in alerts_of((RULES_DIR / "application.rules.yml",)):
        assert rule.alert
        name = rule.labels["service"]
        by_alert.setdefault(rule.alert, []).append(name)
        service = services.get(name)
        if service is None:
            problems.append(f"{rule.where}: service {name!r} is not in the inventory")
            continue
        expr = promql_parser.parse(rule.raw["expr"])
        if service_filters(expr) != {name}:
            problems.append(f"{rule.where} ({name}): selectors filter {service_filters(expr)}")
        if rule.labels["team"] != service.team:
            problems.append(f"{rule.where} ({name}): team is not {service.team}")
        dashboard = f"{inventory.grafana_url}/d/services-{name}"
        if rule.annotations["dashboard_url"] != dashboard:
            problems.append(f"{rule.where} ({name}): dashboard_url is not {dashboard}")
        if rule.alert in APPLICATION_THRESHOLDS:
            limit = getattr(service, APPLICATION_THRESHOLDS[rule.alert])
            want = {limit, inventory.min_request_rate}
            if thresholds(expr) != want:
                problems.append(f"{rule.where} ({name}): compares with {thresholds(expr)}")
        if rule.alert == "ServiceHighLatency":
            quantiles = {
                node.args[0].val
                for node in walk(expr)
                if isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile"
            }
            if quantiles != {service.latency_objective}:
                problems.append(f"{rule.where} ({name}): quantile {quantiles}")
    for alert, names in sorted(by_alert.items()):
        if sorted(names) != sorted(services):
            problems.append(f"{alert}: one rule per inventory service expected, got {names}")
    assert not problems, "\n".join(problems)


# ---- contract: every metric a rule reads is produced by something ------------------------------


def contract_problems(exprs: dict[str, list[str]], produced: set[str]) -> list[str]:
    """Per file: the metrics nothing produces, and the ranges shorter than MIN_RANGE."""
    problems = []
    for where, texts in sorted(exprs.items()):
        facts = [inspect(text) for text in texts]
        unknown = sorted({m for f in facts for m in f.metrics} - produced)
        short = sorted({str(r) for f in facts for r in f.ranges if r < MIN_RANGE})
        if unknown:
            problems.append(f"{where}: metrics nothing produces: {', '.join(unknown)}")
        if short:
            problems.append(f"{where}: ranges under {MIN_RANGE}: {', '.join(short)}")
    return problems


def rules_of_all() -> list[Rule]:
    return [rule for path in ALL_RULE_FILES for rule in rules_of(path)]


def test_every_metric_a_rule_reads_is_produced() -> None:
    exprs: dict[str, list[str]] = {}
    for rule in rules_of_all():
        exprs.setdefault(str(rule.path.relative_to(ROOT)), []).append(str(rule.raw["expr"]))
    problems = contract_problems(exprs, produced_metrics())
    assert not problems, "\n".join(problems)


def test_contract_check_rejects_unknown_metrics_and_short_ranges() -> None:
    exprs = {
        "planted.yml": [
            "rate(finance_made_up_total[5m]) / on () group_left up",
            "finance_signal_generation_seconds > 1",
            '{__name__=~"up|finance_nope"} or {__name__=~".+_total"}',
            "rate(up[30s]) + max_over_time(up[10m:15s])",
        ]
    }
    problems = contract_problems(exprs, produced_metrics())
    assert problems == [
        "planted.yml: metrics nothing produces: finance_made_up_total, finance_nope, "
        'finance_signal_generation_seconds, {__name__=~".+_total"}',
        "planted.yml: ranges under 0:01:00: 0:00:30",
    ]


def test_contract_sources_are_not_empty() -> None:
    assert "finance_signal_generation_seconds_bucket" in exporter_metrics()
    assert "finance_exporter_query_errors_total" in exporter_metrics()
    assert "http_request_duration_seconds_bucket" in instrumented_metrics()
    assert "auth_attempts_total" in instrumented_metrics()
    assert "monitor_status" in third_party_metrics()
