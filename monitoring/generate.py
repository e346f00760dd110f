"""Write every generated file (python -m monitoring generate); deterministic, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitoring import (
    alerting,
    application,
    dashboards,
    elastic,
    kubernetes,
    logs,
    scale,
    uptime,
)
from monitoring.inventory import Inventory
from monitoring.slo import HEADER, service_rules

ROOT = Path(__file__).resolve().parents[1]
SLO_DIR = Path("prometheus/rules/slo")


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, insertion order kept."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(document: Any) -> str:
    """YAML text of `document`, the same every time."""
    text: str = yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100
    )
    return text


def _slo_rules(inventory: Inventory) -> dict[Path, str]:
    files = {}
    for service in inventory.services:
        files[SLO_DIR / f"{service.name}.rules.yml"] = HEADER + dump(
            service_rules(inventory, service)
        )
    return files


APPLICATION_RULES = Path("prometheus/rules/application.rules.yml")
SHARED_DIRS = {
    Path("prometheus"),
    Path("prometheus/rules"),
    Path("alertmanager"),
    Path("alertmanager/tests"),
    # uptime-kuma/extra-monitors.yml is written by hand.
    uptime.MONITORS.parent,
    *(path.parent for path in logs.REDACTION_MODULES),
}


def render(inventory: Inventory, root: Path = ROOT) -> dict[Path, str]:
    """Every generated file (application and SLO rules, Alertmanager's generated parts and its
    route tests, dashboards, the scale-out configs, the rules as PrometheusRule objects, the
    Logstash pipelines and redaction modules from logs/rules.yml, the log indices' templates and
    Kibana objects, Uptime Kuma's monitors), by path relative to the repository root. Reads the
    hand-written rules, alertmanager.yml, prometheus.yml, the Grafana datasources,
    logs/rules.yml, docker-compose.yml and uptime-kuma/extra-monitors.yml under `root`."""
    rules = {
        APPLICATION_RULES: application.HEADER + dump(application.rules(inventory)),
        **_slo_rules(inventory),
    }
    config = (root / alerting.CONFIG).read_text(encoding="utf-8")
    texts = alerting.rule_texts(root, rules)
    return {
        **rules,
        alerting.CONFIG: alerting.render_config(inventory, config, texts),
        alerting.ROUTES: alerting.render_routes(inventory, root, rules),
        **dashboards.render(inventory),
        **scale.render(root, dump),
        **kubernetes.render(texts, dump),
        **logs.render(logs.load(root / logs.RULES)),
        **elastic.render(),
        **uptime.render(root, inventory),
    }


def write(root: Path, files: dict[Path, str]) -> list[Path]:
    """Write `files` under `root`, removing generated files no longer produced."""
    for directory in {root / path.parent for path in files}:
        directory.mkdir(parents=True, exist_ok=True)
    # Directories that only generated files live in lose the files no longer produced; those that
    # also hold hand-written files (prometheus/rules, alertmanager) are left alone.
    owned = {path.parent for path in files} - SHARED_DIRS
    generated = [p for d in owned for p in (root / d).glob("*.yml")]
    if any(path.is_relative_to(dashboards.DASHBOARD_DIR) for path in files):
        generated += (root / dashboards.DASHBOARD_DIR).rglob("*.json")
    if any(path.parent == elastic.INDEX_TEMPLATE_DIR for path in files):
        generated += (root / elastic.INDEX_TEMPLATE_DIR).glob("*.json")
    for stale in generated:
        if stale.relative_to(root) not in files:
            stale.unlink()
    for path, text in files.items():
        (root / path).write_text(text, encoding="utf-8")
    return sorted(files)
