"""Grafana loads the provisioning: every generated dashboard and every datasource, through its
HTTP API. Needs the Grafana image from a registry; skips, saying so, where none is reachable."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_stack import compose_down, run_script, stack_env, unpullable

from monitoring.inventory import load
from support.http import json_call
from support.pins import pinned_image
from support.repo import ROOT, copy_repo
from support.servers import free_port

GRAFANA_IMAGE = pinned_image("GRAFANA_IMAGE")


def _grafana_image(env: dict[str, str]) -> None:
    if unpullable([GRAFANA_IMAGE], env):
        pytest.skip(f"needs {GRAFANA_IMAGE} from a container registry, not reachable here")


def _admin(url: str, password: str, body: object = None) -> Any:
    """Grafana's API as its admin."""
    return json_call(url, "admin", password, body, timeout=10)


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
    try:
        started = run_script(root, env, "start", timeout=1500)
        assert started.returncode == 0, started.stderr[-4000:]
        password = (root / "secrets" / "grafana_admin_password").read_text().strip()
        base = f"http://127.0.0.1:{env['GRAFANA_PORT']}"
        generated = {
            path.stem: (path.parent.name, json.loads(path.read_text()))
            for path in (ROOT / "grafana" / "dashboards").rglob("*.json")
        }
        found = _admin(f"{base}/api/search?type=dash-db&limit=5000", password)
        # Every generated dashboard, in its folder (uid = directory, title from the inventory).
        folders = load().folders
        assert {d["uid"]: (d.get("folderUid"), d.get("folderTitle")) for d in found} == {
            uid: (folder, folders[folder]) for uid, (folder, _) in generated.items()
        }
        for uid, (_, model) in generated.items():
            loaded = _admin(f"{base}/api/dashboards/uid/{uid}", password)
            assert loaded["meta"]["provisioned"] is True, uid
            assert len(loaded["dashboard"]["panels"]) == len(model["panels"]), uid
        sources = _admin(f"{base}/api/datasources", password)
        assert {s["uid"] for s in sources} == {
            "prometheus",
            "alertmanager",
            "elasticsearch",
            "elasticsearch-errors",
            "elasticsearch-security",
            "jaeger",
        }
        # Elasticsearch and Jaeger are not in these profiles. Prometheus has a backend health
        # check; Alertmanager's plugin is frontend-only (its /health answers "Plugin
        # unavailable", grafana/grafana#83794), so Grafana's proxy to it is checked instead.
        health = _admin(f"{base}/api/datasources/uid/prometheus/health", password)
        assert health.get("status") == "OK", health
        status = _admin(f"{base}/api/datasources/proxy/uid/alertmanager/api/v2/status", password)
        assert status["cluster"]["status"] in {"ready", "settling", "disabled"}, status
        # A panel's query through Grafana returns the exporters' data.
        answer = _admin(
            f"{base}/api/ds/query",
            password,
            {
                "from": "now-5m",
                "to": "now",
                "queries": [
                    {
                        "refId": "A",
                        "datasource": {"uid": "prometheus"},
                        "expr": "finance_exporter_up",
                        "instant": True,
                    }
                ],
            },
        )
        assert answer["results"]["A"]["frames"], answer
    finally:
        compose_down(root, env)
