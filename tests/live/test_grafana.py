"""Grafana loads the provisioning: every generated dashboard and every datasource, through its
HTTP API. Needs the Grafana image from a registry; skips, saying so, where none is reachable."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest
from test_stack import compose_down, stack_env, unpullable

from support.repo import ROOT, copy_repo
from support.servers import free_port

GRAFANA_IMAGE = "grafana/grafana:11.6.0"


def _grafana_image(env: dict[str, str]) -> None:
    if unpullable([GRAFANA_IMAGE], env):
        pytest.skip(f"needs {GRAFANA_IMAGE} from a container registry, not reachable here")


def _get(url: str, password: str) -> object:
    request = urllib.request.Request(url)
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_grafana_serves_every_dashboard_and_healthy_datasources(
    standin_env: dict[str, str], tmp_path: Path
) -> None:
    _grafana_image(standin_env)
    project = f"aif-grafana-{uuid.uuid4().hex[:6]}"
    env = {
        **stack_env(standin_env, project),
        "COMPOSE_PROFILES": "demo,dashboards",
        "GRAFANA_PORT": str(free_port()),
    }
    root = copy_repo(tmp_path / "repo")
    run_env = {**os.environ, **env}
    try:
        started = subprocess.run(
            [str(root / "start-monitoring.sh"), "start"],
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
            env=run_env,
        )
        assert started.returncode == 0, started.stderr[-4000:]
        password = (root / "secrets" / "grafana_admin_password").read_text().strip()
        base = f"http://127.0.0.1:{env['GRAFANA_PORT']}"
        found = _get(f"{base}/api/search?type=dash-db&limit=5000", password)
        assert isinstance(found, list)
        expected = {p.stem for p in (ROOT / "grafana" / "dashboards").rglob("*.json")}
        assert {d["uid"] for d in found} >= expected
        sources = _get(f"{base}/api/datasources", password)
        assert isinstance(sources, list)
        assert {s["uid"] for s in sources} == {
            "prometheus",
            "alertmanager",
            "elasticsearch",
            "jaeger",
        }
        for uid in ("prometheus", "alertmanager"):  # the others are not in these profiles
            health = _get(f"{base}/api/datasources/uid/{uid}/health", password)
            assert isinstance(health, dict) and health.get("status") == "OK", (uid, health)
    finally:
        compose_down(root, env)
