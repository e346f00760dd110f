"""The Grafana dashboards are generated from monitoring/inventory.yml and committed; drift fails
here, and so does a panel that queries an unknown datasource, unparsable PromQL, a metric nothing
produces, or a legacy panel type, or whose text names an alert no rule defines. Every alert's
dashboard_url must lead to a dashboard. The Jaeger datasource's links from a span to its logs
and metrics use keys Grafana reads and queries that work."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from monitoring import alert_limits, dashboards, generate
from monitoring.inventory import Inventory, load
from support.panels import fill_variables
from support.promql import (
    INSTRUMENTATION,
    RULES_DIR,
    inspect,
    instrumented_metrics,
    produced_metrics,
)
from support.repo import ROOT

FIX = ".venv/bin/python -m monitoring generate"
DASHBOARD_DIR = ROOT / dashboards.DASHBOARD_DIR
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources"
# The Elasticsearch datasources of one index each beside the general one (uid elasticsearch).
LOG_SOURCES = ("elasticsearch-errors", "elasticsearch-security")
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "table", "bargauge", "text", "logs"}
# Prometheus synthesises ALERTS for every pending and firing alert; no exporter produces it.
BUILTIN_METRICS = {"ALERTS"}
LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")
SERVICE_TEMPLATE = "{{ $labels.service }}"
MADE_UP = 'rate(finance_made_up_total{strategy=~"$strategy"}[$__rate_interval])'
# What Grafana 11.6.0 reads in a trace datasource's jsonData: TraceToLogsOptionsV2 and
# TraceToMetricsOptions (packages/grafana-o11y-ds-frontend/src/TraceToLogs/TraceToLogsSettings.tsx,
# src/TraceToMetrics/TraceToMetricsSettings.tsx) and the node graph switch (src/NodeGraph).
TRACE_LINK_KEYS = {
    "tracesToLogsV2": {
        "datasourceUid",
        "tags",
        "spanStartTimeShift",
        "spanEndTimeShift",
        "filterByTraceID",
        "filterBySpanID",
        "query",
        "customQuery",
    },
    "tracesToMetrics": {
        "datasourceUid",
        "tags",
        "queries",
        "spanStartTimeShift",
        "spanEndTimeShift",
    },
    "nodeGraph": {"enabled"},
}
# rangeUtil.intervalToMs: a signed number and a unit.
GRAFANA_SHIFT = re.compile(r"^-?\d+(ms|s|m|h|d|w)$")
# What ${__tags} becomes for a server span of the demo platform, and for a span without the tags.
SPAN_TAGS = ('route="/v1/payments/{id}", method="GET"', "")
CONTRACT_LABELS = re.compile(r"^\|\s*`http_requests_total`\s*\|\s*\w+\s*\|([^|]*)\|", re.MULTILINE)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load()


def committed() -> dict[Path, dict[str, Any]]:
    return {
        path.relative_to(ROOT): json.loads(path.read_text())
        for path in sorted(DASHBOARD_DIR.rglob("*.json"))
    }


def provisioned_uids() -> set[str]:
    uids = set()
    for path in sorted(DATASOURCES.glob("*.yml")):
        for source in (yaml.safe_load(path.read_text()) or {}).get("datasources") or []:
            uids.add(str(source["uid"]))
    return uids


def panels_of(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def promql(expr: str) -> str:
    """The expression with Grafana's variables replaced by literals Prometheus accepts."""
    return fill_variables(expr, "x")


def lint(where: str, model: dict[str, Any], uids: set[str], produced: set[str]) -> list[str]:
    """Everything wrong with one dashboard model."""
    problems = []
    exprs = []
    for panel in panels_of(model):
        title = f"{where}: panel {panel.get('title')!r}"
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{title}: type {panel.get('type')!r} is legacy or unknown")
        if panel.get("type") in {"row", "text"}:
            continue
        sources = [panel.get("datasource") or {}]
        sources += [t.get("datasource") or {} for t in panel.get("targets", [])]
        for source in sources:
            if source.get("uid") not in uids:
                problems.append(f"{title}: datasource uid {source.get('uid')!r} not provisioned")
        if not panel.get("targets"):
            problems.append(f"{title}: no query")
        # PromQL of the Prometheus targets; the Logs dashboard's Elasticsearch targets are checked
        # in tests/config/test_logs_dashboard.py.
        exprs += [
            (title, str(t.get("expr", "")))
            for t in panel.get("targets", [])
            if (t.get("datasource") or panel.get("datasource") or {}).get("type") == "prometheus"
        ]
    for variable in model.get("templating", {}).get("list", []):
        match = LABEL_VALUES.match(str(variable.get("query", "")))
        if variable.get("type") == "query" and match and match.group(1):
            exprs.append((f"{where}: variable {variable['name']}", match.group(1)))
        if (variable.get("datasource") or {}).get("uid") not in uids:
            problems.append(f"{where}: variable {variable.get('name')}: unknown datasource uid")
    for title, expr in exprs:
        try:
            facts = inspect(promql(expr))
        except (ValueError, TypeError) as err:
            problems.append(f"{title}: PromQL does not parse ({err}): {expr}")
            continue
        unknown = sorted(facts.metrics - produced - BUILTIN_METRICS)
        if unknown:
            problems.append(f"{title}: metrics nothing produces: {', '.join(unknown)}")
    return problems


# ---- drift ---------------------------------------------------------------------------------------


def test_dashboards_match_the_inventory_byte_for_byte(tmp_path: Path) -> None:
    written = generate.write(tmp_path, generate.render(load()))
    generated = {p for p in written if p.suffix == ".json"}
    assert generated, "the generator produced no dashboard"
    for relative in sorted(generated):
        on_disk = ROOT / relative
        assert on_disk.exists(), f"{relative} is not committed; run: {FIX}"
        assert on_disk.read_bytes() == (tmp_path / relative).read_bytes(), (
            f"{relative} is out of date; run: {FIX}"
        )
    orphans = sorted(set(committed()) - generated)
    assert not orphans, f"orphan dashboards {orphans}; run: {FIX}"


def test_regenerating_removes_orphan_dashboards(tmp_path: Path) -> None:
    orphan = tmp_path / dashboards.DASHBOARD_DIR / "retired" / "old.json"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("{}\n")
    generate.write(tmp_path, generate.render(load()))
    assert not orphan.exists()


def test_every_inventory_dashboard_is_generated_in_its_folder(inventory: Inventory) -> None:
    models = committed()
    by_uid = {model["uid"]: path for path, model in models.items()}
    assert set(by_uid) == inventory.dashboard_uids()
    for uid, path in by_uid.items():
        assert path.stem == uid
        meta = inventory.dashboards.get(uid, {"folder": dashboards.SERVICES_FOLDER})
        assert path.parent.name == meta["folder"], f"{path} is not in folder {meta['folder']}"
    for path, model in models.items():
        assert model["description"] == dashboards.DESCRIPTION, path
        assert model["uid"] in inventory.dashboards or model["title"] in {
            s.name for s in inventory.services
        }
        if model["uid"] in inventory.dashboards:
            assert model["title"] == inventory.dashboards[model["uid"]]["title"]


def test_dashboard_files_are_deterministic_json() -> None:
    for path in DASHBOARD_DIR.rglob("*.json"):
        text = path.read_text()
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n", path
        assert not re.search(r'"(created|updated|timestamp|version)"', text), path


# ---- lint ----------------------------------------------------------------------------------------


def test_every_panel_is_valid() -> None:
    uids, produced = provisioned_uids(), produced_metrics()
    problems = [
        problem
        for path, model in committed().items()
        for problem in lint(str(path), model, uids, produced)
    ]
    assert not problems, "\n".join(problems)


def test_every_query_targets_prometheus_or_on_the_logs_dashboard_a_log_index() -> None:
    prometheus = {"type": "prometheus", "uid": "prometheus"}
    logs = [{"type": "elasticsearch", "uid": uid} for uid in ("elasticsearch", *LOG_SOURCES)]
    for path, model in committed().items():
        allowed = [prometheus, *logs] if model["uid"] == "logs-overview" else [prometheus]
        for panel in panels_of(model):
            if panel["type"] != "row":
                assert panel["datasource"] in allowed, (path, panel["title"])


def test_every_dashboard_url_resolves(inventory: Inventory) -> None:
    prefix = f"{inventory.grafana_url}/d/"
    generated = {model["uid"] for model in committed().values()}
    problems = []
    for path in sorted(RULES_DIR.rglob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group["rules"]:
                url = str((rule.get("annotations") or {}).get("dashboard_url", ""))
                if not url:
                    continue
                urls = (
                    [url.replace(SERVICE_TEMPLATE, s.name) for s in inventory.services]
                    if SERVICE_TEMPLATE in url
                    else [url]
                )
                for one in urls:
                    uid = one.removeprefix(prefix)
                    if not one.startswith(prefix) or uid not in generated:
                        problems.append(f"{path.relative_to(ROOT)}: {rule['alert']}: {one}")
    assert not problems, "dashboard_url without a dashboard:\n" + "\n".join(problems)


def test_panel_thresholds_follow_the_inventory(inventory: Inventory) -> None:
    for service in inventory.services:
        model = committed()[dashboards.DASHBOARD_DIR / "services" / f"services-{service.name}.json"]
        steps = {
            panel["title"]: [
                s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            ]
            for panel in panels_of(model)
            if panel["type"] != "row" and "thresholds" in panel["fieldConfig"]["defaults"]
        }
        assert steps["5xx error ratio"] == [None, service.error_rate]
        latency = next(t for t in steps if t.endswith("latency"))
        assert steps[latency] == [None, service.latency_seconds]
        exemplars = [
            t.get("exemplar")
            for panel in panels_of(model)
            if panel["title"] == latency
            for t in panel["targets"]
        ]
        assert exemplars == [True]
    overview = committed()[dashboards.DASHBOARD_DIR / "sre" / "sre-slo-overview.json"]
    lines = {
        s["value"]
        for panel in panels_of(overview)
        if panel["type"] == "timeseries" and panel["title"].startswith("Burn rate")
        for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    }
    assert {14.4, 6.0} <= lines


def test_time_to_exhaustion_means_what_it_says(tmp_path: Path) -> None:
    """The SRE panel's expression, evaluated by promtool over recorded SLO series: half the
    budget left at a 2x burn lasts a quarter of the window (7.5 days); no burn shows the window
    (the cap); an overspent budget shows 0."""
    overview = committed()[dashboards.DASHBOARD_DIR / "sre" / "sre-slo-overview.json"]
    (expr,) = [
        t["expr"]
        for panel in panels_of(overview)
        if panel["title"] == "Time to budget exhaustion"
        for t in panel["targets"]
    ]
    pace = re.search(r"slo:sli_error:ratio_rate(\w+)", expr)
    assert pace is not None, expr
    series = {
        'slo:objective:ratio{service="%s",slo="availability"}': "0.5",
        'slo:error_budget_remaining:ratio{service="%s",slo="availability"}': None,
        f'slo:sli_error:ratio_rate{pace.group(1)}{{service="%s",slo="availability"}}': None,
    }
    # Objective 0.5 keeps the arithmetic exact: an error ratio of 1 is a 2x burn.
    cases = {"half": ("0.5", "1"), "idle": ("0.9", "0"), "spent": ("-0.2", "1")}
    inputs = []
    for service, (remaining, ratio) in cases.items():
        for (name, value), default in zip(series.items(), (None, remaining, ratio), strict=True):
            inputs.append({"series": name % service, "values": f"{value or default}x10"})
    window = 30 * 86400
    expected = {"half": window / 4, "idle": window, "spent": 0}
    test_file = tmp_path / "exhaustion.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": inputs,
                        "promql_expr_test": [
                            {
                                "expr": expr,
                                "eval_time": "5m",
                                "exp_samples": [
                                    {
                                        "labels": f'{{service="{service}",slo="availability"}}',
                                        "value": value,
                                    }
                                    for service, value in expected.items()
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_thresholds_come_from_the_rules(tmp_path: Path) -> None:
    """Every panel that names an alert shows that alert's limit, and the limit is read from the
    rule: moved in a copy of the rules, it moves in the limits the generator uses."""
    shown = 0
    for model in committed().values():
        for panel in panels_of(model):
            named = re.match(r"(\w+) fires (above|below) ", panel.get("description", ""))
            if not named:
                continue
            if named.group(1) not in alert_limits.limits():
                # One rule per service, each with the inventory's limit: checked above and
                # in test_rules.py against the inventory.
                assert model["uid"].startswith("services-"), named.group(1)
                continue
            one = alert_limits.limit(named.group(1))
            steps = [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
            value = steps[1]
            assert value == one.value or value == pytest.approx(1 - one.value), panel["title"]
            shown += 1
    assert shown >= 15
    # Through an `and` guard and parentheses, the compared number, not the guard's.
    assert alert_limits.limit("PaymentSuccessRatioLow").value == 0.9
    assert alert_limits.limit("HostDiskAlmostFull").op == "<"
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    trading = rules / "trading.rules.yml"
    text = trading.read_text()
    # MarketDataStale's expression ends in `) > 60` (see trading.rules.yml).
    stale = "          ) > 60\n        for: 2m\n"
    assert text.count(stale) == 1
    trading.write_text(text.replace(stale, stale.replace("> 60", "> 90")))
    moved = alert_limits.limits(rules)["MarketDataStale"]
    assert moved.threshold() == ("green", [(90, "red")])
    assert moved.says("s") == "MarketDataStale fires above 90s for 2m."
    with pytest.raises(alert_limits.LimitError, match="NoSuchAlert"):
        alert_limits.limit("NoSuchAlert")


def test_every_dashboard_folder_has_its_provider(inventory: Inventory) -> None:
    """One provider per folder, titled from the inventory, reading the directory the compose
    file mounts for it; no dashboard directory without a provider."""
    providers = yaml.safe_load((ROOT / dashboards.PROVIDERS).read_text())["providers"]
    directories = {path.parent.name for path in committed()}
    assert {p["folderUid"] for p in providers} == directories == set(inventory.folders)
    assert {p["folderUid"]: p["folder"] for p in providers} == inventory.folders
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = [v.split(":") for v in compose["services"]["grafana"]["volumes"]]
    assert ["./grafana/dashboards", dashboards.MOUNTED_AT, "ro"] in mounts
    for provider in providers:
        assert provider["options"]["path"] == f"{dashboards.MOUNTED_AT}/{provider['folderUid']}"
        assert provider["allowUiUpdates"] is False


# ---- datasources --------------------------------------------------------------------------------


def datasources() -> dict[str, dict[str, Any]]:
    """Provisioned datasources by uid, with provisioning's `$$` escapes read as Grafana does."""
    found = {}
    for path in sorted(DATASOURCES.glob("*.yml")):
        text = path.read_text().replace("$$", "$")
        for source in (yaml.safe_load(text) or {}).get("datasources") or []:
            found[str(source["uid"])] = source
    return found


def jaeger_links() -> dict[str, Any]:
    (jaeger,) = [s for s in datasources().values() if s["type"] == "jaeger"]
    links: dict[str, Any] = jaeger["jsonData"]
    return links


def test_jaeger_datasource_uses_only_keys_grafana_reads() -> None:
    links = jaeger_links()
    assert set(links) <= set(TRACE_LINK_KEYS), sorted(set(links) - set(TRACE_LINK_KEYS))
    for key, options in links.items():
        assert set(options) <= TRACE_LINK_KEYS[key], (
            key,
            sorted(set(options) - TRACE_LINK_KEYS[key]),
        )
    metrics = links["tracesToMetrics"]
    assert all(set(tag) <= {"key", "value"} for tag in metrics["tags"])
    assert all(set(query) == {"name", "query"} for query in metrics["queries"])
    assert links["nodeGraph"] == {"enabled": True}


def test_a_span_links_to_the_log_lines_of_its_trace() -> None:
    logs = jaeger_links()["tracesToLogsV2"]
    assert datasources()[logs["datasourceUid"]]["type"] == "elasticsearch"
    # The logs carry the ECS field trace.id; without customQuery Grafana ignores `query`.
    assert logs["customQuery"] is True
    assert logs["query"] == 'trace.id:"${__span.traceId}"'
    assert GRAFANA_SHIFT.match(logs["spanStartTimeShift"]), logs["spanStartTimeShift"]
    assert GRAFANA_SHIFT.match(logs["spanEndTimeShift"]), logs["spanEndTimeShift"]
    assert logs["spanStartTimeShift"].startswith("-")


def test_a_span_links_to_its_services_red_metrics() -> None:
    metrics = jaeger_links()["tracesToMetrics"]
    assert datasources()[metrics["datasourceUid"]]["type"] == "prometheus"
    assert all(GRAFANA_SHIFT.match(metrics[k]) for k in ("spanStartTimeShift", "spanEndTimeShift"))
    (labels,) = CONTRACT_LABELS.findall(INSTRUMENTATION.read_text())
    contract = {label.strip(" `") for label in labels.split(",")}
    assert {tag["value"] for tag in metrics["tags"]} <= contract
    read: set[str] = set()
    for query in metrics["queries"]:
        assert "by (service" in query["query"], query["name"]
        for tags in SPAN_TAGS:
            facts = inspect(query["query"].replace("${__tags}", tags))
            read |= facts.metrics
    assert read == {"http_requests_total", "http_request_duration_seconds_bucket"}
    assert read <= instrumented_metrics()


# ---- planted failures ----------------------------------------------------------------------------


def test_the_lint_catches_bad_panels() -> None:
    good_source = {"type": "prometheus", "uid": "prometheus"}
    model = {
        "panels": [
            {
                "type": "graph",
                "title": "legacy",
                "datasource": good_source,
                "targets": [{"datasource": good_source, "expr": "up"}],
            },
            {
                "type": "timeseries",
                "title": "unknown uid",
                "datasource": {"uid": "nope"},
                "targets": [{"datasource": good_source, "expr": "up"}],
            },
            {
                "type": "stat",
                "title": "broken",
                "datasource": good_source,
                "targets": [{"datasource": good_source, "expr": "sum(rate(up[$__rate_interval])"}],
            },
            {
                "type": "stat",
                "title": "made up",
                "datasource": good_source,
                "targets": [
                    {
                        "datasource": good_source,
                        "expr": MADE_UP,
                    }
                ],
            },
        ]
    }
    problems = "\n".join(lint("planted.json", model, provisioned_uids(), produced_metrics()))
    for expected in (
        "panel 'legacy': type 'graph' is legacy",
        "panel 'unknown uid': datasource uid 'nope' not provisioned",
        "panel 'broken': PromQL does not parse",
        "panel 'made up': metrics nothing produces: finance_made_up_total",
    ):
        assert expected in problems, problems


def test_grafana_variables_become_literals() -> None:
    expr = 'rate(x{broker=~"$broker", s=~"${strategy}"}[$__rate_interval] offset $__interval)'
    assert promql(expr) == 'rate(x{broker=~"x", s=~"x"}[5m] offset 1m)'
    promql_parser.parse(promql(expr))


# ---- alerts named in the text --------------------------------------------------------------------

# A word that reads like an alert name: a capital first, two capitals or more, a lowercase letter
# (SLOErrorBudgetBurn, TargetDown; not SLO, P95 or Jaeger).
ALERT_LIKE = re.compile(r"\b[A-Z][A-Za-z0-9]*\b")
# Words of that shape in the dashboards' text that are not alerts.
NOT_ALERTS: set[str] = set()


def alert_like_words(text: str) -> set[str]:
    return {
        word
        for word in ALERT_LIKE.findall(text)
        if sum(c.isupper() for c in word) >= 2 and any(c.islower() for c in word)
    }


def named_alerts(model: dict[str, Any]) -> set[str]:
    """The alert-like words of a dashboard's title and description and its panels' ones."""
    texts = [model.get("title", ""), model.get("description", "")]
    for panel in panels_of(model):
        texts += [panel.get("title", ""), panel.get("description", "")]
    return set().union(*(alert_like_words(text) for text in texts)) - NOT_ALERTS


def test_every_alert_a_dashboard_names_exists() -> None:
    alerts = alert_limits.alert_names()
    problems = [
        f"{path}: {name}"
        for path, model in committed().items()
        for name in sorted(named_alerts(model) - alerts)
    ]
    assert not problems, "dashboards name alerts no rule defines:\n" + "\n".join(problems)
    named = set().union(*(named_alerts(model) for model in committed().values()))
    assert {"SLOErrorBudgetBurn", "TargetDown", "ServiceHighLatency"} <= named


def test_a_misnamed_alert_is_caught() -> None:
    assert alert_like_words("with the 5m window above 14.4x for 2m, SLOBurn alerts critical.") == {
        "SLOBurn"
    }
    assert alert_like_words("SLO P95 latency; Jaeger links; cAdvisor; 14.4x") == set()
    assert "SLOBurn" not in alert_limits.alert_names()
    with pytest.raises(alert_limits.LimitError, match="no alert SLOBurn in"):
        alert_limits.named("SLOBurn")


# ---- stat panels ---------------------------------------------------------------------------------

# Series that say whether something is up: `up` of every target, an exporter's `<thing>_up`, and
# Elasticsearch's health colour.
STATE_METRICS = re.compile(r"^(up|\w+_up|elasticsearch_cluster_health_status)$")


def stat_problems(where: str, model: dict[str, Any]) -> list[str]:
    """A stat panel shows the value now, never the last one of a series that has gone: every
    query is an instant query (a range query with lastNotNull keeps a dead series' last value
    for the whole time range). Money and up/down stats say what an empty answer means
    (noValue), and an up/down stat over an exporter's `<thing>_up` falls back to the exporter's
    own `up`, so a dead exporter shows down rather than nothing."""
    problems = []
    for panel in panels_of(model):
        if panel.get("type") != "stat":
            continue
        title = f"{where}: stat {panel.get('title')!r}"
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        for target in panel.get("targets", []):
            if target.get("instant") is not True or target.get("range") is not False:
                problems.append(f"{title}: query {target.get('refId')} is not instant-only")
        metrics = set().union(
            *(inspect(promql(str(t.get("expr", "")))).metrics for t in panel.get("targets", []))
        )
        units = [str(defaults.get("unit", ""))] + [
            str(prop.get("value", ""))
            for override in panel.get("fieldConfig", {}).get("overrides", [])
            for prop in override.get("properties", [])
            if prop.get("id") == "unit"
        ]
        money = any(unit.startswith("currency") for unit in units)
        state = any(STATE_METRICS.match(metric) for metric in metrics)
        if (money or state) and not defaults.get("noValue"):
            problems.append(f"{title}: no noValue for {'a money' if money else 'an up/down'} stat")
        exporter_up = {m for m in metrics if m != "up" and m.endswith("_up")}
        if exporter_up and "up" not in metrics:
            problems.append(f"{title}: {', '.join(sorted(exporter_up))} without the target's up")
    return problems


def test_stat_panels_show_the_value_now() -> None:
    problems = [
        problem
        for path, model in committed().items()
        for problem in stat_problems(str(path), model)
    ]
    assert not problems, "\n".join(problems)


def test_the_stat_lint_catches_stale_stats() -> None:
    def stat(expr: str, target: dict[str, Any], unit: str = "none") -> dict[str, Any]:
        return {
            "type": "stat",
            "title": expr,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr, **target}],
        }

    instant = {"instant": True, "range": False}
    model = {
        "panels": [
            stat("sum(finance_assets_under_management_usd)", {"range": True}, "currencyUSD"),
            stat("pg_up", instant),
            stat('up{job="alertmanager"}', {"instant": True, "range": True}),
        ]
    }
    problems = "\n".join(stat_problems("planted.json", model))
    for expected in (
        "stat 'sum(finance_assets_under_management_usd)': query A is not instant-only",
        "stat 'sum(finance_assets_under_management_usd)': no noValue for a money stat",
        "stat 'pg_up': no noValue for an up/down stat",
        "stat 'pg_up': pg_up without the target's up",
        "stat 'up{job=\"alertmanager\"}': query A is not instant-only",
    ):
        assert expected in problems, problems


def stat_expr(uid: str, title: str) -> str:
    """The one query of the committed stat panel `title` of dashboard `uid`."""
    (expr,) = [
        str(target["expr"])
        for model in committed().values()
        if model["uid"] == uid
        for panel in panels_of(model)
        if panel["type"] == "stat" and panel["title"] == title
        for target in panel["targets"]
    ]
    return expr


def test_stat_queries_go_down_or_blank_with_their_exporter(tmp_path: Path) -> None:
    """The committed stat queries, evaluated by promtool at the dashboard's end time: samples
    every minute, and at 3m the exporter's scrape fails (Prometheus marks its series stale and
    sets its `up` to 0). Postgres and Redis then read 0 (down), not their last 1; the money
    stats return nothing (noValue), not the last amount."""
    exporters = {
        "postgres": ("pg_up", "postgres-exporter:9187"),
        "redis": ("redis_up", "redis-exporter:9121"),
    }
    inputs = []
    tests = []
    for job, (metric, instance) in exporters.items():
        dying = f'job="{job}",instance="{instance}"'
        # A second target whose exporter stays up but cannot reach its datastore.
        cut_off = f'job="{job}",instance="{job}-b:1"'
        inputs += [
            {"series": f"{metric}{{{dying}}}", "values": "1 1 1 stale"},
            {"series": f"up{{{dying}}}", "values": "1 1 1 0"},
            {"series": f"{metric}{{{cut_off}}}", "values": "0 0 0 0"},
            {"series": f"up{{{cut_off}}}", "values": "1 1 1 1"},
        ]
        expr = stat_expr("infrastructure-overview", job.capitalize())
        tests += [
            {
                "expr": expr,
                "eval_time": "2m",
                "exp_samples": [
                    {"labels": f"{metric}{{{dying}}}", "value": 1},
                    {"labels": f"{metric}{{{cut_off}}}", "value": 0},
                ],
            },
            {
                "expr": expr,
                "eval_time": "3m",
                "exp_samples": [
                    {"labels": f"{{{dying}}}", "value": 0},
                    {"labels": f"{metric}{{{cut_off}}}", "value": 0},
                ],
            },
        ]
    # The money stats: the metric and its labels, the stat (dashboard uid, title), and the
    # labels of the stat's series while the metric lives.
    eur = '{currency="EUR"}'
    money = [
        ("finance_assets_under_management_usd", '{account_type="retail"}',
         "portfolio-risk", "Assets under management", "{}"),
        ("finance_monthly_recurring_revenue_amount", eur,
         "business-revenue", "Monthly recurring revenue", eur),
        ("finance_payments_gross_amount_total", eur,
         "business-revenue", "Gross revenue (24h)", eur),
        ("finance_refunds_amount_total", eur, "business-revenue", "Refunds (24h)", eur),
    ]  # fmt: skip
    for metric, labels, uid, title, shown in money:
        inputs.append({"series": f"{metric}{labels}", "values": "0 10 20 stale"})
        expr = stat_expr(uid, title)
        tests += [
            {"expr": expr, "eval_time": "2m", "exp_samples": [{"labels": shown, "value": 20}]},
            {"expr": expr, "eval_time": "3m", "exp_samples": []},
        ]
    test_file = tmp_path / "stale.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [],
                "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": tests}],
            }
        )
    )
    result = subprocess.run(
        ["promtool", "test", "rules", str(test_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
