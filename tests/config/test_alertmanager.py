"""alertmanager.yml, offline: amtool accepts it, every row of alertmanager/tests/routes.yml routes
where it says, every receiver and team is covered, the templates render, and every receiver
secret the config reads is one the secrets job writes (pointing at the local alert-sink)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from finance_stack.secrets import ALERTING, alerting_defaults
from support.repo import ROOT
from support.stack import ALERT_SINK_URL

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
ROUTES = ROOT / "alertmanager" / "tests" / "routes.yml"
TEMPLATES = ROOT / "alertmanager" / "templates"
INVENTORY = ROOT / "monitoring" / "inventory.yml"
SECRETS_MOUNT = "/run/secrets/alerting"


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("amtool")
    if binary is None:
        pytest.fail("amtool not found: tests/run.sh builds it (pinned-go.sh)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def route_test(labels: dict[str, str], receivers: list[str]) -> subprocess.CompletedProcess[str]:
    return amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={','.join(receivers)}",
        *(f"{name}={value}" for name, value in labels.items()),
    )


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
    assert " - 11 receivers" in result.stdout


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
    assert route_test(labels, ["pagerduty", "payments"]).returncode == 0
    for wrong in (["payments", "pagerduty"], ["payments"]):
        result = route_test(labels, wrong)
        assert result.returncode == 1, wrong
        assert "did not match" in result.stdout + result.stderr


def test_every_receiver_is_reached_by_some_row() -> None:
    reached = {str(receiver) for row in rows() for receiver in row["receivers"]}  # type: ignore[attr-defined]
    assert reached == receiver_names()


def test_every_team_of_the_inventory_reaches_its_own_receiver() -> None:
    teams = load(INVENTORY)["teams"]  # type: ignore[index]
    assert set(teams) == {"sre", "platform", "payments", "trading", "business", "security", "ai"}
    for team, settings in teams.items():
        receiver = settings["receiver"]
        assert receiver in receiver_names(), team
        labels = {"alertname": "AnyAlert", "severity": "warning", "team": team, "service": "x"}
        assert route_test(labels, [receiver]).returncode == 0, team
        labels["severity"] = "critical"
        assert route_test(labels, ["pagerduty", receiver]).returncode == 0, team


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
        hook["url"]
        for receiver in document["receivers"]  # type: ignore[attr-defined]
        for hook in receiver.get("webhook_configs", [])
    ]
    assert webhooks == [f"{ALERT_SINK_URL}/webhook/drill"]


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
    assert [p["target"] for p in sink["ports"]] == [9095]
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
