"""`start-monitoring.sh validate` passes on the repository and names the file and problem of
every config broken on purpose."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from support.repo import ROOT, copy_repo


def validate(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(root / "start-monitoring.sh"), "validate"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_repository_configs_are_valid() -> None:
    result = validate(ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("[+]") == 10 and "[x]" not in result.stderr


def _line_of(relative: str, text: str) -> int:
    """The 1-based line of the repository file that starts with `text`."""
    lines = (ROOT / relative).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.startswith(text))


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def _sub(pattern: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        changed, count = re.subn(pattern, new, text, count=1, flags=re.MULTILINE)
        assert count == 1, pattern
        return changed

    return edit


BREAKAGES = {
    "env-port-out-of-range": (
        ".env",
        lambda _: "# mine\nPROMETHEUS_PORT=99999\n",
        ".env:2: PROMETHEUS_PORT=99999 is not a TCP port (1-65535)",
    ),
    "env-unreadable-line": (
        ".env",
        lambda _: "COMPOSE_PROFILES=demo\nthis is not a setting\n",
        ".env:2: expected NAME=VALUE",
    ),
    "compose-unknown-key": (
        "docker-compose.yml",
        _replace(
            "    mem_limit: ${PROMETHEUS_MEMORY:-1g}\n",
            "    mem_limit: ${PROMETHEUS_MEMORY:-1g}\n    colour: blue\n",
        ),
        "docker-compose.yml: docker compose config failed: ",
    ),
    "compose-bad-yaml": (
        "docker-compose.yml",
        _replace("name: ${COMPOSE_PROJECT_NAME", "name: [${COMPOSE_PROJECT_NAME"),
        f"docker-compose.yml:{_line_of('docker-compose.yml', 'name: ${COMPOSE_PROJECT_NAME')}: "
        "invalid YAML",
    ),
    "prometheus-unknown-field": (
        "prometheus/prometheus.yml",
        _replace("  scrape_interval: 15s", "  scrape_intervall: 15s"),
        "prometheus/prometheus.yml: promtool: ",
    ),
    "prometheus-bad-rule": (
        "prometheus/rules/broken.yml",
        lambda _: (
            "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: rate(x[5m]\n"
        ),
        "prometheus/prometheus.yml: promtool: ",
    ),
    "alertmanager-unknown-receiver": (
        "alertmanager/alertmanager.yml",
        _sub(r"^  receiver: \S+$", "  receiver: nobody"),
        "alertmanager/alertmanager.yml: amtool: ",
    ),
    "grafana-duplicate-uid": (
        "grafana/provisioning/datasources/datasources.yml",
        _replace("    uid: alertmanager", "    uid: prometheus"),
        "grafana/provisioning/datasources/datasources.yml: duplicate datasource uid 'prometheus'",
    ),
    "grafana-dashboard-json": (
        "grafana/dashboards/sre/broken.json",
        lambda _: '{\n  "title": "x",\n  "panels": [\n}\n',
        "grafana/dashboards/sre/broken.json:4: invalid JSON",
    ),
    "grafana-dashboard-unknown-uid": (
        "grafana/dashboards/sre/unknown.json",
        lambda _: '{"panels": [{"datasource": {"type": "prometheus", "uid": "prom"}}]}\n',
        "grafana/dashboards/sre/unknown.json: unknown datasource uid 'prom'",
    ),
    "logstash-unbalanced": (
        "logstash/pipeline/main.conf",
        _replace("codec => json_lines }", "codec => json_lines"),
        f"logstash/pipeline/main.conf:{_line_of('logstash/pipeline/main.conf', 'input {')}:"
        " '{' is never closed",
    ),
    "logstash-unknown-section": (
        "logstash/pipeline/main.conf",
        _replace("filter {", "filtre {"),
        f"logstash/pipeline/main.conf:{_line_of('logstash/pipeline/main.conf', 'filter {')}:"
        " unknown section 'filtre'",
    ),
    "logstash-pipeline-stale": (
        "logstash/pipeline/main.conf",
        _replace('"ai-finance-errors" }', '"ai-finance-error" }'),
        "logstash/pipeline/main.conf: not what logs/rules.yml generates: run python -m"
        " monitoring generate",
    ),
    "logs-rules-bad-pattern": (
        "logs/rules.yml",
        _replace("    text: 'eyJ", "    text: '\\beyJ"),
        f"logs/rules.yml:{_line_of('logs/rules.yml', '    text: ' + chr(39) + 'eyJ')}: jwt text"
        " pattern has a Unicode-dependent or engine-specific escape",
    ),
    "filebeat-wrong-port": (
        "filebeat/filebeat.yml",
        _replace('"logstash:5044"', '"logstash:5000"'),
        f"filebeat/filebeat.yml:{_line_of('filebeat/filebeat.yml', '  hosts:')}: output.logstash"
        ".hosts has 'logstash:5000': Logstash's Beats input is logstash:5044",
    ),
    "elasticsearch-bad-yaml": (
        "elasticsearch/elasticsearch.yml",
        _replace("cluster.name: ai-finance", "cluster.name: [ai-finance"),
        "elasticsearch/elasticsearch.yml:4: invalid YAML",
    ),
    "elastic-role-bad-json": (
        "elasticsearch/setup/roles/logstash_writer.json",
        _replace('"cluster": ["monitor"],', '"cluster": ["monitor"]'),
        "elasticsearch/setup/roles/logstash_writer.json:3: invalid JSON",
    ),
    "elastic-template-unknown-policy": (
        "elasticsearch/setup/index-templates/ai-finance-errors.json",
        _replace('"ai-finance-90d"', '"ai-finance-9d"'),
        "elasticsearch/setup/index-templates/ai-finance-errors.json: unknown ILM policy "
        "'ai-finance-9d'",
    ),
    "elastic-role-unknown-index": (
        "elasticsearch/setup/roles/logstash_writer.json",
        _replace('"ai-finance-trading-*"', '"ai-finance-trade-*"'),
        "elasticsearch/setup/roles/logstash_writer.json: index 'ai-finance-trade-*' is no "
        "template's",
    ),
    "elastic-user-unknown-role": (
        "elasticsearch/setup/users/grafana_reader.json",
        _replace('"ai_finance_reader"', '"ai_finance_readers"'),
        "elasticsearch/setup/users/grafana_reader.json: unknown role 'ai_finance_readers'",
    ),
    "elastic-role-bad-kibana-privilege": (
        "elasticsearch/setup/roles/kibana_importer.json",
        _replace('"feature_discover.minimal_all"', '"feature_discover_minimal_all"'),
        "elasticsearch/setup/roles/kibana_importer.json: Kibana privilege"
        " 'feature_discover_minimal_all': expected feature_<feature>.<privilege>",
    ),
    "elastic-role-bad-kibana-space": (
        "elasticsearch/setup/roles/kibana_logs_viewer.json",
        _replace('"space:default"', '"default"'),
        "elasticsearch/setup/roles/kibana_logs_viewer.json: Kibana resource 'default': expected *"
        " or space:<space id>",
    ),
    "kibana-saved-search-unknown-view": (
        "kibana/saved-objects/ai-finance.ndjson",
        _replace('"id": "ai-finance-trading", "name"', '"id": "ai-finance-trade", "name"'),
        "kibana/saved-objects/ai-finance.ndjson:11: unknown data view 'ai-finance-trade'",
    ),
    "uptime-monitors-stale": (
        "uptime-kuma/monitors.yml",
        _replace("  interval: 60\n", "  interval: 61\n"),
        "uptime-kuma/monitors.yml: not what docker-compose.yml and uptime-kuma/extra-monitors.yml"
        " generate: run python -m monitoring generate",
    ),
    "uptime-extra-monitor-invalid": (
        "uptime-kuma/extra-monitors.yml",
        lambda _: "monitors:\n  - {name: site, type: http, url: www.example.com}\n",
        "uptime-kuma/extra-monitors.yml: monitor #1: url must start with http:// or https://",
    ),
    "kibana-not-a-mapping": (
        "kibana/kibana.yml",
        lambda _: "- just\n- a list\n",
        "kibana/kibana.yml:1: expected a mapping of settings",
    ),
}


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_broken_config_fails_naming_file_and_problem(case: str, tmp_path: Path) -> None:
    relative, edit, expected = BREAKAGES[case]
    root = copy_repo(tmp_path / "repo")
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(edit(path.read_text() if path.exists() else ""))
    result = validate(root)
    assert result.returncode == 1, result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("[x]")]
    assert len(failures) == 1, result.stderr
    assert expected in failures[0], failures[0]


def test_without_the_compose_plugin_validate_says_install_compose_v2(tmp_path: Path) -> None:
    root = copy_repo(tmp_path / "repo")
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "empty"), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(root / "start-monitoring.sh"), "validate"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert result.returncode == 1
    assert "[x] compose: docker-compose.yml: Docker Compose v2 not found: install" in result.stderr
    assert "unknown flag" not in result.stderr
