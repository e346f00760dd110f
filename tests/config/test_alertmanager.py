"""alertmanager.yml, offline: amtool accepts it; every row of alertmanager/tests/routes.yml
(generated from the rules' own labels) routes where the paging policy says; no row describes an
alert no rule produces and every rule has a row; every receiver and team is covered; the
templates render; every receiver secret the config reads is one the secrets job writes."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from finance_stack.drill import alert as drill_alert
from finance_stack.secrets import ALERTING, ALERTING_TEAMS, alerting_defaults
from monitoring import alerting, generate
from monitoring.inventory import load as load_inventory
from support.alertmanager import CONFIG, amtool, route_test
from support.repo import ROOT
from support.stack import ALERT_SINK_URL

ROUTES = ROOT / "alertmanager" / "tests" / "routes.yml"
TEMPLATES = ROOT / "alertmanager" / "templates"
INVENTORY = ROOT / "monitoring" / "inventory.yml"
SECRETS_MOUNT = "/run/secrets/alerting"


def load(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def config() -> dict[str, object]:
    document = load(CONFIG)
    assert isinstance(document, dict)
    return document


def rows() -> list[dict[str, object]]:
    document = load(ROUTES)
    assert isinstance(document, list)
    return document


def receiver_names() -> set[str]:
    receivers = config()["receivers"]
    assert isinstance(receivers, list)
    return {receiver["name"] for receiver in receivers}


def secret_files(node: object) -> list[str]:
    """Every value of a `*_file` key anywhere in the config."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if str(k).endswith("_file") and isinstance(v, str)]
        return found + [f for value in node.values() for f in secret_files(value)]
    if isinstance(node, list):
        return [f for item in node for f in secret_files(item)]
    return []


def test_amtool_check_config_accepts_the_config_and_its_template() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert " - 1 templates" in result.stdout
    # Three per team of the inventory (Slack, PagerDuty, email), watchdog, drill, no-notify.
    assert f" - {3 * len(load_inventory().teams) + 3} receivers" in result.stdout


@pytest.mark.parametrize("row", rows(), ids=lambda row: str(row["name"]))
def test_route(row: dict[str, object]) -> None:
    labels, receivers = row["labels"], row["receivers"]
    assert isinstance(labels, dict) and isinstance(receivers, list)
    result = route_test({str(k): str(v) for k, v in labels.items()}, receivers)
    assert result.returncode == 0, f"routed to {result.stdout.strip()}, expected {receivers}"


def test_a_wrong_expectation_fails() -> None:
    # The harness must be able to fail: the same labels with the receivers in the wrong order,
    # and with one missing.
    labels = {"alertname": "SLOErrorBudgetBurn", "severity": "critical", "team": "payments"}
    assert route_test(labels, ["payments-pagerduty", "payments-email", "payments"]).returncode == 0
    for wrong in (["payments", "payments-email", "payments-pagerduty"], ["payments"]):
        result = route_test(labels, wrong)
        assert result.returncode == 1, wrong
        assert "did not match" in result.stdout + result.stderr


# Labels a row may carry beyond the rule's own: series labels the routing tree matches on.
SERIES_LABELS = {"integration", "provider"}


def unproduced_rows(rows_: list[dict[str, object]]) -> list[str]:
    """Rows whose labels no alerting rule produces: the rule's alertname and static labels,
    plus only series labels routing reads."""
    produced = alerting.rule_label_sets(alerting.rule_texts(ROOT, {}))
    problems = []
    for row in rows_:
        labels = {str(k): str(v) for k, v in row["labels"].items()}  # type: ignore[attr-defined]
        own = {k: v for k, v in labels.items() if k not in SERIES_LABELS}
        if own not in produced:
            problems.append(f"{row['name']}: no rule produces {own}")
    return problems


def test_every_row_is_an_alert_some_rule_produces() -> None:
    assert not unproduced_rows(rows()), "\n".join(unproduced_rows(rows()))


def test_a_row_for_an_alert_no_rule_produces_fails() -> None:
    planted = [
        # The old hand-written rows: a critical TargetDown (the rule is a warning) and a
        # MarketDataStale warning (the rule pages).
        {
            "name": "t",
            "labels": {
                "alertname": "TargetDown",
                "severity": "critical",
                "team": "sre",
                "category": "infrastructure",
                "service": "postgres-exporter",
            },
        },
        {
            "name": "m",
            "labels": {
                "alertname": "MarketDataStale",
                "severity": "warning",
                "team": "trading",
                "category": "trading",
                "service": "market-data",
            },
        },
    ]
    assert unproduced_rows(planted) == [
        "t: no rule produces {'alertname': 'TargetDown', 'severity': 'critical', 'team': 'sre', "
        "'category': 'infrastructure', 'service': 'postgres-exporter'}",
        "m: no rule produces {'alertname': 'MarketDataStale', 'severity': 'warning', "
        "'team': 'trading', 'category': 'trading', 'service': 'market-data'}",
    ]


def test_every_alerting_rule_has_a_row_of_its_own_labels() -> None:
    produced = alerting.rule_label_sets(alerting.rule_texts(ROOT, {}))
    covered = [
        {k: str(v) for k, v in row["labels"].items() if k not in SERIES_LABELS}  # type: ignore[attr-defined]
        for row in rows()
    ]
    assert [labels for labels in produced if labels not in covered] == []
    assert len(produced) > 100


def test_the_routes_are_generated_from_the_inventory() -> None:
    files = generate.render(load_inventory())
    assert files[alerting.CONFIG] == CONFIG.read_text(), "run: python -m monitoring generate"
    assert files[alerting.ROUTES] == ROUTES.read_text(), "run: python -m monitoring generate"


def test_a_missing_marker_is_refused() -> None:
    text = CONFIG.read_text().replace("# END generated: receivers\n", "")
    with pytest.raises(alerting.GenerateError, match="BEGIN generated: receivers"):
        alerting.render_config(load_inventory(), text, alerting.rule_texts(ROOT, {}))


def test_every_receiver_is_reached_by_some_row_or_by_its_producer() -> None:
    reached = {str(receiver) for row in rows() for receiver in row["receivers"]}  # type: ignore[attr-defined]
    # The drill's alert comes from `start-monitoring.sh drill`, not a rule; no rule is info yet
    # besides the Watchdog, which has its own route. A team with no critical rule has its pager
    # and mailbox reached by test_every_team_of_the_inventory_reaches_its_own_receivers only.
    teams = {r for team in load_inventory().teams.values() for r in team.receivers}
    assert receiver_names() - reached - teams == {"drill", "no-notify"}
    assert {"watchdog", "sre", "sre-pagerduty", "sre-email"} <= reached
    labels = drill_alert("drill-20250101T000000Z-0001", datetime.now(UTC), False)[0]["labels"]
    assert route_test(dict(labels), ["drill"]).returncode == 0  # type: ignore[arg-type]
    info = {"alertname": "AnyInfo", "severity": "info", "team": "payments", "service": "x"}
    assert route_test(info, ["no-notify"]).returncode == 0


def test_every_team_of_the_inventory_reaches_its_own_receivers() -> None:
    teams = load_inventory().teams
    assert tuple(teams) == ALERTING_TEAMS, "finance_stack.secrets.ALERTING_TEAMS"
    for team in teams.values():
        slack, pagerduty, email = team.receivers
        labels = {"alertname": "AnyAlert", "severity": "warning", "team": team.name, "service": "x"}
        assert route_test(labels, [slack]).returncode == 0, team
        labels["severity"] = "critical"
        assert route_test(labels, [pagerduty, email, slack]).returncode == 0, team


def test_an_unknown_team_falls_back_to_sre() -> None:
    labels = {"alertname": "SomethingNew", "severity": "warning", "team": "unknown", "service": "x"}
    assert route_test(labels, ["sre"]).returncode == 0
    del labels["team"]
    labels["severity"] = "critical"
    assert route_test(labels, ["sre-pagerduty", "sre-email", "sre"]).returncode == 0


def test_a_failing_integration_is_never_told_about_itself() -> None:
    for integration in alerting.INTEGRATIONS:
        labels = {
            "alertname": alerting.NOTIFICATION_FAILURES,
            "severity": "critical",
            "team": "sre",
            "integration": integration,
        }
        expected = alerting.expected_receivers(load_inventory(), labels)
        kinds = {"sre": "slack", "sre-pagerduty": "pagerduty", "sre-email": "email"}
        assert integration not in {kinds[r] for r in expected}, integration
        assert len(expected) >= 2, integration
        assert route_test(labels, expected).returncode == 0, integration


def test_every_receiver_secret_is_a_file_the_secrets_job_writes() -> None:
    files = secret_files(config())
    assert files, "no *_file key: a receiver secret would be in the config"
    assert {os.path.dirname(f) for f in files} == {SECRETS_MOUNT}
    assert {os.path.basename(f) for f in files} == set(ALERTING)


def test_without_configuration_everything_is_delivered_to_the_alert_sink() -> None:
    # Slack URLs come from the default secret files; PagerDuty's and the drill's URLs, which
    # are no secrets, from the config.
    assert all(
        v.startswith(f"{ALERT_SINK_URL}/")
        for k, v in alerting_defaults(ALERT_SINK_URL).items()
        if "url" in k
    )
    document = config()
    assert document["global"]["pagerduty_url"] == f"{ALERT_SINK_URL}/pagerduty"  # type: ignore[index]
    webhooks = [
        hook.get("url") or hook["url_file"]
        for receiver in document["receivers"]  # type: ignore[attr-defined]
        for hook in receiver.get("webhook_configs", [])
    ]
    assert webhooks == [f"{SECRETS_MOUNT}/watchdog_url", f"{ALERT_SINK_URL}/webhook/drill"]
    assert document["global"]["smtp_smarthost"] == "alert-sink:2525"  # type: ignore[index]


def test_compose_mounts_the_secrets_where_the_config_reads_them() -> None:
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    services = json.loads(result.stdout)["services"]
    mounts = {
        (volume["source"], volume.get("read_only", False))
        for volume in services["alertmanager"]["volumes"]
        if volume["target"] == SECRETS_MOUNT
    }
    assert mounts == {(str(ROOT / "secrets" / "alerting"), True)}
    sink = services["alert-sink"]
    assert [p["target"] for p in sink["ports"]] == [9095, 2525]
    assert sink["read_only"] is True


NOTIFICATION = {
    "receiver": "payments",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "SLOErrorBudgetBurn",
                "severity": "critical",
                "team": "payments",
                "category": "slo",
                "service": "payment",
                "slo": "availability",
                "burn": "fast",
            },
            "annotations": {
                "summary": "payment is burning its availability error budget 14.4x too fast",
                "description": "the budget lasts 50 hours at this rate",
                "runbook_url": "https://example.invalid/runbooks/SLOErrorBudgetBurn.md",
                "dashboard_url": "http://localhost:3001/d/services-payment",
            },
        }
    ],
    "groupLabels": {"alertname": "SLOErrorBudgetBurn", "service": "payment"},
    "commonLabels": {
        "alertname": "SLOErrorBudgetBurn",
        "severity": "critical",
        "team": "payments",
        "service": "payment",
        "slo": "availability",
    },
    "commonAnnotations": {
        "summary": "payment is burning its availability error budget 14.4x too fast"
    },
    "externalURL": "http://localhost:9093",
}


def render(tmp_path: Path, template: str) -> str:
    data = tmp_path / "data.json"
    data.write_text(json.dumps(NOTIFICATION))
    result = amtool(
        "template",
        "render",
        f"--template.glob={TEMPLATES}/*.tmpl",
        f"--template.data={data}",
        f"--template.text={{{{ template {json.dumps(template)} . }}}}",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_slack_message_has_summary_description_and_links(tmp_path: Path) -> None:
    assert render(tmp_path, "finance.slack.title") == (
        "[FIRING:1] SLOErrorBudgetBurn | payment | availability"
    )
    assert render(tmp_path, "finance.slack.text").splitlines() == [
        "*CRITICAL* payment is burning its availability error budget 14.4x too fast",
        "the budget lasts 50 hours at this rate",
        "<https://example.invalid/runbooks/SLOErrorBudgetBurn.md|Runbook> "
        "<http://localhost:3001/d/services-payment|Dashboard>",
        "team `payments` | category `slo` | service `payment` | burn `fast`",
    ]
    assert render(tmp_path, "finance.slack.color") == "danger"


def test_pagerduty_title_names_the_service_and_the_summary(tmp_path: Path) -> None:
    assert render(tmp_path, "finance.pagerduty.description") == (
        "[payment] payment is burning its availability error budget 14.4x too fast"
    )


def test_email_subject_names_severity_service_and_summary(tmp_path: Path) -> None:
    assert render(tmp_path, "finance.email.subject") == (
        "[FIRING:1] CRITICAL payment: "
        "payment is burning its availability error budget 14.4x too fast"
    )
