"""The setup jobs' scripts (elasticsearch/setup/setup.sh, kibana/setup.sh) run for real, by bash
and curl, against an HTTP server on loopback that records every request and answers as the
Elasticsearch and Kibana APIs do (acknowledged, a 400 with its reason, a 401). Proves what they
send (paths, bodies from the JSON files, passwords from the secret files, Kibana's kbn-xsrf and
multipart import), that a re-run sends the same, and that each failure is explained: the file,
the request, the HTTP status and the reply, or curl's reason. Whether Elasticsearch 8.18 accepts
those bodies is the full-stack test's part (tests/live/test_logs_fullstack.py)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from monitoring import elastic
from support.json_api import send_json, serving
from support.repo import ROOT
from support.servers import free_port

SETUP = ROOT / "elasticsearch" / "setup"
KIBANA_SETUP = ROOT / "kibana" / "setup.sh"
EXISTING = "allow_no_indices=true&filter_path=*.settings.index.provided_name"
SECRET_NAMES = (
    "elastic_password",
    "kibana_system_password",
    "logstash_internal_password",
    "grafana_es_password",
    "logs_exporter_es_password",
    "logs_viewer_password",
    "kibana_setup_password",
    "elasticsearch_exporter_password",
    "elasticsearch_snapshot_password",
)
# curl options of the scripts and the curl release that added each: the Elasticsearch 8.18
# image has curl 7.68 (Ubuntu 20.04), so nothing newer may be used (--fail-with-body is 7.76).
CURL_OPTIONS = {
    "--silent": "4.0",
    "--show-error": "5.9",
    "--max-time": "4.0",
    "--config": "4.10",
    "--request": "6.0",
    "--output": "4.0",
    "--write-out": "6.5",
    "--header": "5.0",
    "--data-binary": "7.2",
    "--form": "5.0",
}


@dataclass
class Api:
    """The recorded requests, and the replies to give: (method, path) -> (status, body)."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: dict[tuple[str, str], tuple[int, object]] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [f"{r['method']} {r['path']}" for r in self.requests]

    def body(self, method: str, path: str) -> Any:
        (found,) = [r for r in self.requests if (r["method"], r["path"]) == (method, path)]
        return json.loads(found["body"])


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            api.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
            path = self.path.split("?")[0]
            status, reply = api.replies.get((self.command, path), (200, {"acknowledged": True}))
            send_json(self, status, reply)

        do_GET = do_PUT = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read api.requests."""

    return Handler


@pytest.fixture
def api() -> Iterator[Api]:
    recorder = Api("")
    with serving(_handler(recorder)) as url:
        recorder.url = url
        yield recorder


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name in SECRET_NAMES:
        (folder / name).write_text(f"pw-{name}\n")
    return folder


def _run(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The script by bash, with only PATH and `env` in its environment."""
    return subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def run_setup(url: str, secret_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    settings = {"ELASTICSEARCH_URL": url, "SECRETS": str(secret_dir)}
    return _run(SETUP / "setup.sh", {**settings, "ELASTICSEARCH_WAIT_SECONDS": "4", **env})


def _files(folder: str) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((SETUP / folder).glob("*.json"))}


def _expected_paths(existing: bool = True) -> list[str]:
    paths = ["GET /_cluster/health?wait_for_status=yellow&timeout=1s"]
    paths.append("POST /_security/user/kibana_system/_password")
    paths += [f"PUT /_ilm/policy/{name}" for name in _files("ilm")]
    paths += [f"PUT /_component_template/{name}" for name in _files("component-templates")]
    paths += [f"PUT /_index_template/{name}" for name in _files("index-templates")]
    for index in sorted(elastic.indices(), key=lambda i: i.name):
        paths.append(f"GET /{index.pattern}/_settings?{EXISTING}")
        if existing:
            paths.append(f"PUT /{index.pattern}/_settings?allow_no_indices=true")
    paths += [f"PUT /_security/role/{name}" for name in _files("roles")]
    paths += [f"PUT /_security/user/{name}" for name in _files("users")]
    return paths


def test_setup_puts_every_file_and_a_rerun_sends_the_same(api: Api, secret_dir: Path) -> None:
    first = run_setup(api.url, secret_dir)
    assert first.returncode == 0, first.stderr
    assert api.paths() == _expected_paths()
    for folder, prefix in (
        ("ilm", "/_ilm/policy"),
        ("index-templates", "/_index_template"),
        ("roles", "/_security/role"),
    ):
        for name, document in _files(folder).items():
            assert api.body("PUT", f"{prefix}/{name}") == document, (folder, name)
    token = base64.b64encode(b"elastic:pw-elastic_password").decode()
    assert {r["headers"]["Authorization"] for r in api.requests} == {f"Basic {token}"}
    sent = list(api.requests)
    api.requests.clear()
    again = run_setup(api.url, secret_dir)
    assert again.returncode == 0, again.stderr
    assert [(r["path"], r["body"]) for r in api.requests] == [(r["path"], r["body"]) for r in sent]


def test_users_get_their_files_fields_and_their_secrets_password(
    api: Api, secret_dir: Path
) -> None:
    assert run_setup(api.url, secret_dir).returncode == 0
    secret_of = {
        "logstash_internal": "logstash_internal_password",
        "grafana_reader": "grafana_es_password",
        "logs_exporter": "logs_exporter_es_password",
        "logs_viewer": "logs_viewer_password",
        "kibana_setup": "kibana_setup_password",
        "elasticsearch_exporter": "elasticsearch_exporter_password",
        "elasticsearch_snapshot": "elasticsearch_snapshot_password",
    }
    for name, document in _files("users").items():
        body = api.body("PUT", f"/_security/user/{name}")
        assert body == {**document, "password": f"pw-{secret_of[name]}"}
    kibana = api.body("POST", "/_security/user/kibana_system/_password")
    assert kibana == {"password": (secret_dir / "kibana_system_password").read_text().strip()}


def test_a_fresh_cluster_has_no_existing_index_to_update(api: Api, secret_dir: Path) -> None:
    for index in elastic.indices():
        api.replies[("GET", f"/{index.pattern}/_settings")] = (200, {})
    assert run_setup(api.url, secret_dir).returncode == 0
    assert api.paths() == _expected_paths(existing=False)


@pytest.mark.parametrize("replicas", ["0", "1"])
def test_replicas_come_from_elasticsearch_replicas(
    api: Api, secret_dir: Path, replicas: str
) -> None:
    assert run_setup(api.url, secret_dir, ELASTICSEARCH_REPLICAS=replicas).returncode == 0
    settings = api.body("PUT", "/_component_template/ai-finance-settings")
    assert settings["template"]["settings"]["index"]["number_of_replicas"] == replicas
    existing = api.body("PUT", "/ai-finance-errors-*/_settings?allow_no_indices=true")
    assert existing == {
        "index.lifecycle.name": "ai-finance-90d",
        "index.number_of_replicas": int(replicas),
    }


def test_replicas_that_are_not_a_number_stop_before_any_request(api: Api, secret_dir: Path) -> None:
    result = run_setup(api.url, secret_dir, ELASTICSEARCH_REPLICAS="one")
    assert result.returncode == 1
    assert "ELASTICSEARCH_REPLICAS=one: expected a whole number" in result.stderr
    assert api.requests == []


def test_a_refused_request_names_the_file_the_status_and_the_reply(
    api: Api, secret_dir: Path
) -> None:
    reason = {"error": {"type": "illegal_argument_exception", "reason": "unknown setting"}}
    api.replies[("PUT", "/_index_template/ai-finance-errors")] = (400, reason)
    result = run_setup(api.url, secret_dir)
    assert result.returncode == 1
    assert (
        "[x] index template ai-finance-errors (index-templates/ai-finance-errors.json): "
        f"PUT {api.url}/_index_template/ai-finance-errors failed: HTTP 400: " + json.dumps(reason)
    ) in result.stderr
    assert api.paths()[-1] == "PUT /_index_template/ai-finance-errors"  # it stopped there


def test_a_wrong_elastic_password_stops_at_once(api: Api, secret_dir: Path) -> None:
    api.replies[("GET", "/_cluster/health")] = (401, {"error": "unable to authenticate"})
    result = run_setup(api.url, secret_dir, ELASTICSEARCH_WAIT_SECONDS="60")
    assert result.returncode == 1
    assert "the elastic password in secrets/elastic_password is not this cluster's" in (
        result.stderr
    )
    assert len(api.requests) == 1


def test_nothing_listening_is_explained_when_the_wait_runs_out(secret_dir: Path) -> None:
    result = run_setup(f"http://127.0.0.1:{free_port()}", secret_dir)
    assert result.returncode == 1
    assert "no success within 4s; last: connection refused: nothing listens there" in (
        result.stderr
    )
    assert "[+] waiting for elasticsearch" in result.stderr


def test_a_missing_secret_is_named(api: Api, secret_dir: Path) -> None:
    (secret_dir / "grafana_es_password").unlink()
    result = run_setup(api.url, secret_dir)
    assert result.returncode == 1
    assert f"secret {secret_dir}/grafana_es_password is missing" in result.stderr
    assert api.requests == []


# ---- Kibana --------------------------------------------------------------------------------------

AVAILABLE = {"status": {"overall": {"level": "available", "summary": "All services available"}}}
# kibana-setup's secret file (docker-compose.yml): its own user's password, not elastic's.
KIBANA_SETUP_FILE = "kibana_setup_password"


@pytest.fixture
def kibana_secret_dir(tmp_path: Path) -> Path:
    """The secrets kibana-setup is given: its user's password alone."""
    folder = tmp_path / "kibana-secrets"
    folder.mkdir()
    (folder / KIBANA_SETUP_FILE).write_text(f"pw-{KIBANA_SETUP_FILE}\n")
    return folder


def run_kibana_setup(url: str, secret_dir: Path) -> subprocess.CompletedProcess[str]:
    return _run(
        KIBANA_SETUP,
        {
            "KIBANA_URL": url,
            "SECRETS": str(secret_dir),
            "LIB": str(SETUP / "lib.sh"),
            "KIBANA_WAIT_SECONDS": "4",
            "JAEGER_UI_URL": "http://jaeger.example:16686",
        },
    )


def _multipart_file(request: dict[str, Any]) -> tuple[str, str]:
    """(file name, content) of the import request's `file` part."""
    found = re.search(
        r'Content-Disposition: form-data; name="file"; filename="([^"]+)"\r\n'
        r"Content-Type: [^\r]+\r\n\r\n(.*?)\r\n--",
        request["body"],
        re.DOTALL,
    )
    assert found, request["body"][:500]
    return found.group(1), found.group(2)


def test_kibana_setup_imports_the_saved_objects_with_links_to_jaeger(
    api: Api, kibana_secret_dir: Path
) -> None:
    api.replies[("GET", "/api/status")] = (200, AVAILABLE)
    api.replies[("POST", "/api/saved_objects/_import")] = (
        200,
        {"success": True, "successCount": 10},
    )
    result = run_kibana_setup(api.url, kibana_secret_dir)
    assert result.returncode == 0, result.stderr
    assert api.paths() == ["GET /api/status", "POST /api/saved_objects/_import?overwrite=true"]
    # Both requests as kibana_setup (role kibana_importer), never as elastic.
    token = base64.b64encode(f"kibana_setup:pw-{KIBANA_SETUP_FILE}".encode()).decode()
    assert {r["headers"]["Authorization"] for r in api.requests} == {f"Basic {token}"}
    upload = api.requests[1]
    assert upload["headers"]["kbn-xsrf"] == "true"
    name, content = _multipart_file(upload)
    assert name == "ai-finance.ndjson"
    committed = (ROOT / elastic.SAVED_OBJECTS).read_text()
    assert content == committed.replace("${JAEGER_UI_URL}", "http://jaeger.example:16686")
    assert "http://jaeger.example:16686/trace/{{value}}" in content


def test_kibana_setup_waits_for_an_available_status(api: Api, kibana_secret_dir: Path) -> None:
    api.replies[("GET", "/api/status")] = (200, {"status": {"overall": {"level": "degraded"}}})
    result = run_kibana_setup(api.url, kibana_secret_dir)
    assert result.returncode == 1
    assert "kibana at" in result.stderr and "status is not available yet" in result.stderr
    assert all(path == "GET /api/status" for path in api.paths())


def test_kibana_setup_stops_at_once_when_its_user_is_refused(
    api: Api, kibana_secret_dir: Path
) -> None:
    api.replies[("GET", "/api/status")] = (401, {"statusCode": 401, "error": "Unauthorized"})
    result = _run(
        KIBANA_SETUP,
        {
            "KIBANA_URL": api.url,
            "SECRETS": str(kibana_secret_dir),
            "LIB": str(SETUP / "lib.sh"),
            "KIBANA_WAIT_SECONDS": "60",
        },
    )
    assert result.returncode == 1
    assert "Kibana refused kibana_setup; its password (secrets/kibana_setup_password)" in (
        result.stderr
    )
    assert "re-run it" in result.stderr
    assert api.paths() == ["GET /api/status"]


def test_kibana_setup_names_its_missing_secret(api: Api, tmp_path: Path) -> None:
    result = run_kibana_setup(api.url, tmp_path)
    assert result.returncode == 1
    assert f"secret {tmp_path}/{KIBANA_SETUP_FILE} is missing" in result.stderr
    assert api.requests == []


def test_kibana_setup_fails_when_the_import_refuses_objects(
    api: Api, kibana_secret_dir: Path
) -> None:
    refused = {"success": False, "successCount": 9, "errors": [{"id": "ai-finance-logs-search"}]}
    api.replies[("GET", "/api/status")] = (200, AVAILABLE)
    api.replies[("POST", "/api/saved_objects/_import")] = (200, refused)
    result = run_kibana_setup(api.url, kibana_secret_dir)
    assert result.returncode == 1
    assert "saved-objects import refused some objects" in result.stderr
    assert "ai-finance-logs-search" in result.stderr


# ---- shell hygiene -------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [SETUP / "setup.sh", SETUP / "lib.sh", KIBANA_SETUP])
def test_scripts_use_only_curl_options_of_curl_7_68(script: Path) -> None:
    code = "\n".join(
        line for line in script.read_text().splitlines() if not line.lstrip().startswith("#")
    )
    # The scripts' only long options are curl's.
    used = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", code))
    assert used <= set(CURL_OPTIONS), sorted(used - set(CURL_OPTIONS))
