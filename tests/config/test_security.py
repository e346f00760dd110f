"""Secure by default, checked offline: loopback-only ports, unpublished datastores, no committed
secrets, non-root where the image allows, the superuser's password only where it is needed. The
secret files: tests/stack/test_secrets.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from support.repo import ROOT, tracked_files

# Jobs that run to completion: no healthcheck, restart policy or memory limit of their own.
ONE_OFF_JOBS = {
    "secrets-init",
    "demo-setup",
    "elasticsearch-setup",
    "kibana-setup",
    "kuma-setup",
    # backup and restore's workers (profile ops)
    "volume-worker",
    "elastic-worker",
}
DATASTORES = {"demo-postgres", "demo-redis", "elasticsearch-setup", "demo-setup"}
# Services that keep root, each for a reason written beside it in docker-compose.yml.
ROOT_ALLOWED = {
    "secrets-init": "gives each secret file to its reader's uid",
    "elasticsearch-setup": "reads secrets owned by other services' uids",
    "cadvisor": "reads the host's cgroups and Docker state",
    "filebeat": "reads Docker's root-owned container logs and socket (no capabilities kept)",
    "uptime-kuma": "the image has no non-root mode",
}
# Services given the elastic superuser's password, each for a reason. Every other client of
# Elasticsearch or Kibana logs in as its own user (elasticsearch/setup/users/).
SUPERUSER_ALLOWED = {
    "elasticsearch": "the image sets the elastic password from it on a new data volume",
    "elasticsearch-setup": "creates the roles and users and sets kibana_system's password",
}
# Images whose own USER is non-root (or that drop root themselves: postgres, redis).
NON_ROOT_IMAGES = {
    "prometheus",
    "alertmanager",
    "node-exporter",
    "grafana",
    "elasticsearch",
    "logstash",
    "kibana",
    "jaeger",
    # json_exporter's Dockerfile (v0.7.0): USER nobody.
    "logs-exporter",
    "demo-postgres",
    "demo-redis",
    "demo-setup",
}


def compose_config(env: dict[str, str] | None = None) -> dict[str, object]:
    result = subprocess.run(
        [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            "--profile",
            "*",
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    config: dict[str, object] = json.loads(result.stdout)
    return config


def services(config: dict[str, object]) -> dict[str, dict[str, object]]:
    found = config["services"]
    assert isinstance(found, dict)
    return found


def test_every_published_port_is_on_loopback_by_default() -> None:
    published = {
        (name, port["published"], port.get("host_ip"))
        for name, service in services(compose_config()).items()
        for port in service.get("ports", [])  # type: ignore[union-attr]
    }
    assert len(published) >= 14
    assert {host for _, _, host in published} == {"127.0.0.1"}


def test_bind_address_opt_in_changes_every_port() -> None:
    config = compose_config({"BIND_ADDRESS": "0.0.0.0"})
    hosts = {
        port.get("host_ip")
        for service in services(config).values()
        for port in service.get("ports", [])  # type: ignore[union-attr]
    }
    assert hosts == {"0.0.0.0"}


def test_datastores_are_not_published() -> None:
    for name in DATASTORES:
        assert not services(compose_config())[name].get("ports"), name


def test_every_long_running_service_has_a_healthcheck_memory_limit_and_log_rotation() -> None:
    for name, service in services(compose_config()).items():
        if name in ONE_OFF_JOBS:
            continue
        assert service.get("mem_limit"), name
        assert service.get("logging", {}).get("options", {}).get("max-size"), name  # type: ignore[union-attr]
        assert service.get("restart") == "unless-stopped", name
        if name not in {"redis-exporter", "app-redis-exporter"}:  # FROM scratch: redis_up is it
            assert service.get("healthcheck", {}).get("test"), name  # type: ignore[union-attr]


def test_root_only_where_needed() -> None:
    for name, service in services(compose_config()).items():
        user = str(service.get("user", ""))
        if user.startswith("0"):
            assert name in ROOT_ALLOWED, f"{name} runs as root without a stated reason"
        elif not user and name not in NON_ROOT_IMAGES | set(ROOT_ALLOWED):
            # Our own images declare USER 10001 in their Dockerfiles.
            assert service.get("build"), f"{name}: no user and not known to run non-root"


def test_the_superuser_password_goes_only_where_it_is_needed() -> None:
    mounted = {
        name
        for name, service in services(compose_config()).items()
        for secret in service.get("secrets", [])  # type: ignore[union-attr]
        if secret["source"] == "elastic_password"
    }
    assert mounted == set(SUPERUSER_ALLOWED)
    assert "kibana-setup" not in mounted  # it imports as kibana_setup (role kibana_importer)
    assert "elasticsearch-exporter" not in mounted  # user elasticsearch_exporter (cluster monitor)
    assert "elastic-worker" not in mounted  # user elasticsearch_snapshot (role snapshot_operator)


def test_an_anonymous_kibana_status_shows_only_the_overall_level() -> None:
    """With status.allowAnonymous true Kibana 8.18 gives anyone the full status (version, build,
    OS and process metrics, every plugin); left false (the default), an unauthenticated request
    gets core's overall level alone, which is all the healthcheck needs."""
    settings = yaml.safe_load((ROOT / "kibana" / "kibana.yml").read_text())
    assert settings.get("status.allowAnonymous", False) is False
    healthcheck = services(compose_config())["kibana"]["healthcheck"]["test"]  # type: ignore[index]
    assert healthcheck[-1] == "http://127.0.0.1:5601/api/status"
    assert "-u" not in healthcheck  # no credentials: the redacted answer


def test_our_images_declare_a_non_root_user() -> None:
    for folder in ("exporters", "stack", "demo", "uptime-kuma"):
        dockerfile = ROOT / folder / "Dockerfile"
        assert re.search(r"^USER 10001:10001$", dockerfile.read_text(), re.MULTILINE), dockerfile


SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS key": re.compile(r"AKIA[0-9A-Z]{16}"),
    "Slack token or webhook": re.compile(
        r"xox[abpr]-[0-9A-Za-z-]{10,}|hooks\.slack\.com/services/T\w+"
    ),
    "GitHub token": re.compile(r"gh[pousr]_[0-9A-Za-z]{30,}"),
    # A quoted literal assigned to a secret-like name, in any file.
    "password literal": re.compile(
        r"(?i)(password|passwd|secret|token|api_key)[\w.]*['\"]?\s*[:=]\s*['\"][^'\"$<{\s]{8,}['\"]"
    ),
}
# In config files values are unquoted too: `password: s3cretvalue`.
CONFIG_PATTERN = re.compile(
    r"(?i)^\s*(?!secrets\s*:)[\w.]*(password|passwd|secret|token|api_key)[\w.]*\s*[:=]\s*"
    r"[^\s$<{'\"#\[-]{8,}\s*$"
)
CONFIG_SUFFIXES = {".yml", ".yaml", ".env", ".conf", ".ini", ".example", ".json"}
# Lines that name a secret's place, not its value, or a module ("secrets": "finance_stack.secrets").
SCAN_EXCLUDE = re.compile(r"secrets/|/run/secrets|_FILE|PASSWORD_FILE|['\"]finance_stack\.\w+['\"]")


def scan(path: Path, text: str) -> list[str]:
    """Every line of `text` that looks like a committed secret, as `path:line: kind`."""
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        if SCAN_EXCLUDE.search(line):
            continue
        kinds = [kind for kind, pattern in SECRET_PATTERNS.items() if pattern.search(line)]
        if path.suffix in CONFIG_SUFFIXES and CONFIG_PATTERN.search(line):
            kinds.append("password in config")
        findings.extend(f"{path}:{number}: {kind}" for kind in kinds)
    return findings


def test_no_secret_is_committed() -> None:
    findings = []
    for path in tracked_files():
        findings.extend(scan(path.relative_to(ROOT), path.read_text(errors="replace")))
    assert findings == []


def test_the_scan_finds_planted_secrets() -> None:
    planted = "\n".join(
        [
            'GRAFANA_PASSWORD = "' + "hunter2" * 2 + '"',
            "xoxb-" + "1234567890-abcdefghij",
            "-----BEGIN RSA " + "PRIVATE KEY-----",
        ]
    )
    assert [f.split(": ", 1)[1] for f in scan(Path("x.py"), planted)] == [
        "password literal",
        "Slack token or webhook",
        "private key",
    ]
    config = "smtp_auth_password: " + "s3cr3t" * 2
    assert scan(Path("alertmanager.yml"), config) == ["alertmanager.yml:1: password in config"]
    assert scan(Path("x.yml"), "password: ${GRAFANA_PASSWORD}\npassword_file: /run/x") == []
