"""Where each dashboard panel's data comes from: the Compose services whose metrics it reads.

A panel's query names metrics; each metric is produced by a scrape job (our exporters, a
third-party exporter in monitoring/third_party_metrics.yml, Prometheus itself) or by recording
rules over other metrics; a job's targets are Compose services (prometheus/prometheus.yml). The
platform services' own metrics (docs/instrumentation.md) come from the `platform` job (the demo
platform), or from `CONTRACT` where no such job exists. The live truth
tests use this to say which panels a stack can show, and why the others cannot be checked in it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from finance_stack.compose import read_project
from finance_stack.envfile import Settings
from finance_stack.targets import scrape_targets
from support.promql import (
    THIRD_PARTY,
    exporter_metrics,
    inspect,
    instrumented_metrics,
    recording_rules,
)
from support.repo import ROOT

PROMETHEUS_YML = ROOT / "prometheus" / "prometheus.yml"
COMPOSE_YML = ROOT / "docker-compose.yml"
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
# The platform services that follow docs/instrumentation.md, when no `platform` job scrapes them.
CONTRACT = "platform services (docs/instrumentation.md)"
# Series Prometheus makes itself: `up` for every target, ALERTS for every pending/firing alert.
PROMETHEUS_MADE = {"up", "ALERTS"}
# What a panel's Grafana variables become in an instant query Prometheus can answer.
_RANGE_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1d"}
_MATCHER_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def fill_variables(expr: str, value: str) -> str:
    """`expr` with Grafana's range variables as durations and every other variable as `value`."""
    for name, duration in _RANGE_VARIABLES.items():
        expr = expr.replace(name, duration)
    return _MATCHER_VARIABLE.sub(value, expr)


@dataclass(frozen=True)
class Panel:
    dashboard: str
    title: str
    exprs: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.dashboard, self.title)

    def services(self, producers: dict[str, frozenset[str]]) -> frozenset[str]:
        """The services whose metrics the panel reads (KeyError: a metric nothing produces)."""
        found: frozenset[str] = frozenset()
        for query in self.queries():
            for metric in inspect(query).metrics:
                found |= producers[metric]
        return found

    def missing(self, producers: dict[str, frozenset[str]], running: set[str]) -> frozenset[str]:
        """The services the panel waits for: for each metric it reads that none of the running
        services produces, all of its producers (one running producer is enough: the demo's
        postgres-exporter and your own datastores' app-postgres-exporter both give pg_up)."""
        lacking: frozenset[str] = frozenset()
        for query in self.queries():
            for metric in inspect(query).metrics:
                services = producers[metric] - {CONTRACT}
                if services and not services & running:
                    lacking |= services
        return lacking

    def queries(self) -> list[str]:
        """The panel's expressions as Prometheus sees them with every variable set to "all"."""
        return [fill_variables(expr, ".*") for expr in self.exprs]


def panels(root: Path = ROOT) -> list[Panel]:
    """Every panel with a PromQL query, in every generated dashboard under `root`."""
    found = []
    for path in sorted((root / DASHBOARD_DIR.relative_to(ROOT)).rglob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            exprs = tuple(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
            if exprs:
                found.append(Panel(dashboard["uid"], panel["title"], exprs))
    return found


def job_services() -> dict[str, frozenset[str]]:
    """Compose services scraped by each job: a target's host is its service name. Jobs of the
    optional profiles get their targets from the services' `ai-finance.scrape.*` labels."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    every = read_project(ROOT, "*", Settings(ROOT, environ={**os.environ, "COMPOSE_PROFILES": "*"}))
    labelled = scrape_targets(every)
    jobs = {}
    for job in config["scrape_configs"]:
        groups = list(job.get("static_configs", []))
        # A file_sd job reads targets/<labelled job>.json: its own, or one it shares with the
        # other jobs of the same service (the logs-exporter's three).
        for sd in job.get("file_sd_configs", []):
            for file in sd["files"]:
                groups += labelled.get(Path(file).stem, [])
        hosts = {target.rsplit(":", 1)[0] for group in groups for target in group["targets"]}
        jobs[job["job_name"]] = frozenset("prometheus" if h == "localhost" else h for h in hosts)
    return jobs


def metric_services() -> dict[str, frozenset[str]]:
    """Every metric a rule or panel may read, mapped to the services that produce it."""
    jobs = job_services()
    producers: dict[str, frozenset[str]] = {}
    for name in exporter_metrics():
        producers[name] = jobs["finance-exporter"]
    for exporter, entry in yaml.safe_load(THIRD_PARTY.read_text()).items():
        # An exporter with no scrape job yet produces nothing any stack can show.
        services = jobs[entry["job"]] if entry["job"] else frozenset({f"{exporter} (no job)"})
        for name in entry["metrics"]:
            producers[str(name)] = services
    for name in PROMETHEUS_MADE:
        producers[name] = frozenset({"prometheus"})
    # The platform services' metrics come from whatever job scrapes them: the demo platform's
    # (job `platform`), or, without one, nothing this repository runs.
    for name in instrumented_metrics():
        producers[name] = jobs.get("platform", frozenset({CONTRACT}))
    # Recording rules produce what their inputs' services produce; rules read rules, so repeat
    # until nothing changes.
    rules = {
        record: frozenset().union(*(inspect(expr).metrics for expr in exprs))
        for record, exprs in recording_rules().items()
    }
    changed = True
    while changed:
        changed = False
        for record, inputs in rules.items():
            # A rule over no metric (a constant, such as an SLO objective) is Prometheus' own.
            services = frozenset().union(*(producers.get(m, frozenset()) for m in inputs))
            services = services if inputs else frozenset({"prometheus"})
            if services != producers.get(record, frozenset()):
                producers[record] = services
                changed = True
    return producers
