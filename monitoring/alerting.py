"""Generate Alertmanager's team routes, receivers and market-hours time intervals into
alertmanager/alertmanager.yml (between `# BEGIN generated: <part>` and `# END generated: <part>`
markers; the rest of the file is hand-written), and the route-test rows of
alertmanager/tests/routes.yml from the real rules' labels.

The paging policy (DESIGN.md §4, docs/alerting.md) is `expected_receivers`: what a label set
must reach. The tests run every row through amtool against the generated routing tree, so the
tree and the policy are two descriptions of one rule that must agree.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from monitoring.inventory import Inventory, Team

CONFIG = Path("alertmanager/alertmanager.yml")
ROUTES = Path("alertmanager/tests/routes.yml")
RULES_DIR = Path("prometheus/rules")
SECRETS = "/run/secrets/alerting"

WATCHDOG = "Watchdog"
NOTIFICATION_FAILURES = "AlertmanagerNotificationFailures"
# Each Alertmanager integration the receivers use, and the receivers of the SRE team that still
# reach people when that one fails: an alert about a failing integration never travels it.
INTEGRATIONS = ("slack", "pagerduty", "email", "webhook")
FALLBACK_TEAM = "sre"


class GenerateError(ValueError):
    """alertmanager.yml lacks a marker, or a rule cannot be routed."""


# ---- the policy -----------------------------------------------------------------------------


def team_of(inventory: Inventory, labels: dict[str, str]) -> Team:
    return inventory.teams.get(labels.get("team", ""), inventory.teams[FALLBACK_TEAM])


def _without(team: Team, integration: str) -> list[str]:
    slack, pagerduty, email = team.receivers
    return {
        "slack": [pagerduty, email],
        "pagerduty": [email, slack],
        "email": [pagerduty, slack],
    }.get(integration, [pagerduty, email, slack])


def expected_receivers(inventory: Inventory, labels: dict[str, str]) -> list[str]:
    """The receivers an alert with `labels` reaches, in Alertmanager's order."""
    if labels.get("alertname") == WATCHDOG:
        return ["watchdog"]
    if labels.get("alertname") == NOTIFICATION_FAILURES:
        return _without(inventory.teams[FALLBACK_TEAM], labels.get("integration", ""))
    if labels.get("severity") == "info":
        return ["no-notify"]
    slack, pagerduty, email = team_of(inventory, labels).receivers
    return [pagerduty, email, slack] if labels.get("severity") == "critical" else [slack]


# ---- the routing tree -----------------------------------------------------------------------


def _m(*matchers: str) -> list[str]:
    return list(matchers)


def _team_block(team: Team, *, matched: bool, active: list[str] | None) -> dict[str, Any]:
    """One team's route: critical to its pager and mailbox (continuing), then its channel."""
    slack, pagerduty, email = team.receivers
    when = {"active_time_intervals": active} if active else {}
    children = [
        {"matchers": _m('severity="critical"'), "receiver": pagerduty, **when, "continue": True},
        {"matchers": _m('severity="critical"'), "receiver": email, **when, "continue": True},
        {"receiver": slack, **when},
    ]
    block: dict[str, Any] = {"receiver": slack, "routes": children}
    if matched:
        block = {"matchers": _m(f'team="{team.name}"'), **block}
    return block


def _team_blocks(
    inventory: Inventory, active: list[str] | None = None, teams: set[str] | None = None
) -> list[dict[str, Any]]:
    chosen = [t for t in inventory.teams.values() if teams is None or t.name in teams]
    blocks = [_team_block(t, matched=True, active=active) for t in chosen]
    # No known team: SRE's, so nothing is routed to nobody.
    blocks.append(_team_block(inventory.teams[FALLBACK_TEAM], matched=False, active=active))
    return blocks


def _failures_block(inventory: Inventory) -> dict[str, Any]:
    sre = inventory.teams[FALLBACK_TEAM]
    children: list[dict[str, Any]] = []
    for integration in INTEGRATIONS[:-1]:
        receivers = _without(sre, integration)
        for position, receiver in enumerate(receivers):
            child: dict[str, Any] = {
                "matchers": _m(f'integration="{integration}"'),
                "receiver": receiver,
            }
            if position < len(receivers) - 1:
                child["continue"] = True
            children.append(child)
    others = _without(sre, INTEGRATIONS[-1])
    for position, receiver in enumerate(others):
        child = {"receiver": receiver}
        if position < len(others) - 1:
            child["continue"] = True
        children.append(child)
    return {
        "matchers": _m(f'alertname="{NOTIFICATION_FAILURES}"'),
        "receiver": sre.name,
        "routes": children,
    }


def interval_name(market: str) -> str:
    return f"{market}-open"


def routes(inventory: Inventory, market_teams: set[str]) -> list[dict[str, Any]]:
    """The generated part of route.routes, after the hand-written Watchdog and drill routes.
    `market_teams`: the teams of the rules of the market alerts (their routes are repeated under
    each market's hours)."""
    tree: list[dict[str, Any]] = [
        _failures_block(inventory),
        # Info alerts help troubleshooting (the UI, inhibition); they notify nobody.
        {"matchers": _m('severity="info"'), "receiver": "no-notify"},
    ]
    alerts = "|".join(inventory.market_alerts)
    for market in inventory.markets:
        if market.open is None or not alerts:
            continue
        tree.append(
            {
                "matchers": _m(
                    f'alertname=~"{alerts}"', f'provider=~"{"|".join(market.providers)}"'
                ),
                "routes": _team_blocks(
                    inventory, active=[interval_name(market.name)], teams=market_teams
                ),
            }
        )
    return tree + _team_blocks(inventory)


def time_intervals(inventory: Inventory) -> list[dict[str, Any]]:
    return [
        {"name": interval_name(m.name), "time_intervals": [dict(spec) for spec in m.open]}
        for m in inventory.markets
        if m.open is not None
    ]


def receivers(inventory: Inventory) -> list[dict[str, Any]]:
    """Each team's Slack channel, PagerDuty service and mailbox."""
    found: list[dict[str, Any]] = []
    for team in inventory.teams.values():
        slack, pagerduty, email = team.receivers
        found.append(
            {
                "name": slack,
                "slack_configs": [
                    {
                        "api_url_file": f"{SECRETS}/slack_{team.name}_url",
                        "send_resolved": True,
                        "title": '{{ template "finance.slack.title" . }}',
                        "text": '{{ template "finance.slack.text" . }}',
                        "color": '{{ template "finance.slack.color" . }}',
                        "fallback": '{{ template "finance.slack.title" . }}',
                    }
                ],
            }
        )
        found.append(
            {
                "name": pagerduty,
                "pagerduty_configs": [
                    {
                        "routing_key_file": f"{SECRETS}/pagerduty_{team.name}_routing_key",
                        "send_resolved": True,
                        "description": '{{ template "finance.pagerduty.description" . }}',
                        "severity": (
                            '{{ if eq .CommonLabels.severity "critical" }}critical'
                            "{{ else }}warning{{ end }}"
                        ),
                        "component": "{{ .CommonLabels.service }}",
                        "group": "{{ .CommonLabels.team }}",
                        "class": "{{ .CommonLabels.category }}",
                        "details": {
                            "summary": "{{ .CommonAnnotations.summary }}",
                            "runbook": "{{ .CommonAnnotations.runbook_url }}",
                            "dashboard": "{{ .CommonAnnotations.dashboard_url }}",
                            "firing": '{{ template "pagerduty.default.instances" .Alerts.Firing }}',
                            "resolved": (
                                '{{ template "pagerduty.default.instances" .Alerts.Resolved }}'
                            ),
                            "num_firing": "{{ .Alerts.Firing | len }}",
                            "num_resolved": "{{ .Alerts.Resolved | len }}",
                        },
                    }
                ],
            }
        )
        found.append(
            {
                "name": email,
                "email_configs": [
                    {
                        "to": team.email,
                        "send_resolved": True,
                        "headers": {"Subject": '{{ template "finance.email.subject" . }}'},
                    }
                ],
            }
        )
    return found


# ---- splicing into alertmanager.yml -----------------------------------------------------------


def _dump(document: Any, indent: int) -> str:
    text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


class _Dumper(yaml.SafeDumper):
    """Block style; lists indented under their key, as the hand-written parts are."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


def splice(text: str, part: str, body: str) -> str:
    """Replace the lines between part's BEGIN and END markers with `body`."""
    pattern = re.compile(
        rf"(?P<begin>^[ \t]*# BEGIN generated: {part}\b[^\n]*\n)"
        rf".*?"
        rf"(?P<end>^[ \t]*# END generated: {part}\n)",
        re.S | re.M,
    )
    match = pattern.search(text)
    if match is None:
        raise GenerateError(f"{CONFIG}: no '# BEGIN generated: {part}' ... END block")
    return text[: match.start()] + match["begin"] + body + match["end"] + text[match.end() :]


def render_config(inventory: Inventory, current: str, rules: dict[Path, str]) -> str:
    """alertmanager.yml with its generated parts rewritten from the inventory and `rules` (the
    texts of every rules file)."""
    market_teams = {
        labels["team"]
        for labels in rule_label_sets(rules)
        if labels["alertname"] in inventory.market_alerts and "team" in labels
    }
    text = splice(current, "routes", _dump(routes(inventory, market_teams), 4))
    text = splice(text, "receivers", _dump(receivers(inventory), 2))
    return splice(text, "time_intervals", _dump(time_intervals(inventory), 2))


# ---- route-test rows from the rules ---------------------------------------------------------

# Labels a row keeps from a rule: the ones routing, grouping or inhibition look at.
ROW_LABELS = ("severity", "team", "category", "service", "slo", "burn", "consumed")


def rule_texts(root: Path, generated: dict[Path, str]) -> dict[Path, str]:
    """Every rules file's text: the generated ones as rendered, the others from disk."""
    texts = {
        path.relative_to(root): path.read_text(encoding="utf-8")
        for path in sorted((root / RULES_DIR).rglob("*.yml"))
    }
    texts.update({p: text for p, text in generated.items() if p.is_relative_to(RULES_DIR)})
    return dict(sorted(texts.items()))


def rule_label_sets(texts: dict[Path, str]) -> list[dict[str, str]]:
    """alertname and static labels of every alerting rule, one per distinct set."""
    seen: list[dict[str, str]] = []
    for text in texts.values():
        for group in (yaml.safe_load(text) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" not in rule:
                    continue
                labels = {"alertname": str(rule["alert"])}
                for name in ROW_LABELS:
                    value = str((rule.get("labels") or {}).get(name, ""))
                    if value and "{{" not in value:
                        labels[name] = value
                if labels not in seen:
                    seen.append(labels)
    return seen


def _variants(inventory: Inventory, labels: dict[str, str]) -> list[dict[str, str]]:
    """The series labels routing also matches on: the failing integration, the provider."""
    if labels["alertname"] == NOTIFICATION_FAILURES:
        return [{**labels, "integration": i} for i in INTEGRATIONS]
    if labels["alertname"] in inventory.market_alerts:
        return [{**labels, "provider": p} for m in inventory.markets for p in m.providers]
    return [labels]


def route_rows(inventory: Inventory, texts: dict[Path, str]) -> list[dict[str, Any]]:
    rows = []
    for base in rule_label_sets(texts):
        for labels in _variants(inventory, base):
            receivers_ = expected_receivers(inventory, labels)
            extra = {k: labels[k] for k in ("integration", "provider") if k in labels}
            where = "".join(f", {k} {v}" for k, v in extra.items())
            rows.append(
                {
                    "name": (
                        f"{labels['alertname']} ({labels.get('severity', '?')}, team "
                        f"{labels.get('team', '?')}, {labels.get('service', 'any service')}"
                        f"{where})"
                    ),
                    "labels": labels,
                    "receivers": receivers_,
                }
            )
    return rows


ROUTES_HEADER = """\
# Generated by: python -m monitoring generate. Do not edit.
# Routing cases of alertmanager.yml, one per distinct label set of the real alerting rules
# (prometheus/rules/**; alertname and the labels routing, grouping and inhibition read), and the
# receivers the paging policy (monitoring/alerting.py expected_receivers, docs/alerting.md) says
# it must reach, in Alertmanager's order. tests/config/test_alertmanager.py runs
#   amtool config routes test --config.file=alertmanager/alertmanager.yml \\
#     --verify.receivers=<receivers> <label>=<value> ...
# for each row, and fails on a row whose labels no rule produces.
"""


def render_routes(inventory: Inventory, root: Path, generated: dict[Path, str]) -> str:
    rows = route_rows(inventory, rule_texts(root, generated))
    return ROUTES_HEADER + yaml.dump(
        rows, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100
    )
