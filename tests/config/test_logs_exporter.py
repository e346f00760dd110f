"""The logs-exporter's config (json-exporter/config.yml) in the real json_exporter at the version
docker-compose.yml pins (built by tests/live/images/pinned-go.sh, on PATH from tests/run.sh),
probing HTTP servers on loopback that answer as Logstash 8.18's node stats API and
Elasticsearch's _count and _search do. Proves the metric names and labels the rules and the Logs
dashboard read, the credentials and bodies sent to Elasticsearch, and that a target which does
not answer fails the probe (so the job's `up` is 0)."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml

from support.exposition import Samples, fetch, parse
from support.json_api import send_json
from support.pins import pinned_version
from support.repo import ROOT
from support.servers import free_port, stop_process

CONFIG = ROOT / "json-exporter" / "config.yml"
PASSWORD_FILE = "/run/secrets/logs_exporter_es_password"
PASSWORD = secrets.token_urlsafe(16)
# Logstash 8.18's GET /_node/stats, cut to what the config reads: the shape of the example in
# docs/static/monitoring/monitoring-apis.asciidoc (v8.18.2), with the dead_letter_queue keys of
# logstash-core AbstractPipelineExt.collectDlqStats.
NODE_STATS = {
    "events": {"in": 216610, "filtered": 216485, "out": 216480, "duration_in_millis": 365495},
    "pipelines": {
        "main": {
            "events": {"in": 216610, "out": 216480},
            "dead_letter_queue": {
                "queue_size_in_bytes": 4096,
                "max_queue_size_in_bytes": 1073741824,
                "dropped_events": 3,
                "expired_events": 0,
                "storage_policy": "drop_newer",
                "last_error": "no errors",
            },
        },
        # pipelines.yml's second pipeline, which reads main's queue into ai-finance-deadletter-*.
        "deadletter": {"events": {"in": 5, "out": 5}},
    },
}
SEARCH_REPLY = {
    "hits": {"total": {"value": 42, "relation": "eq"}, "hits": []},
    "aggregations": {
        "services": {
            "buckets": [
                {"key": "user-management", "doc_count": 40},
                {"key": "api-gateway", "doc_count": 2},
            ]
        }
    },
}


class _Recorder(BaseHTTPRequestHandler):
    """Answers as Logstash or Elasticsearch by path, and records every request."""

    requests: list[dict[str, Any]]

    def _reply(self, status: int, document: object) -> None:
        send_json(self, status, document)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = urllib.parse.unquote(self.path)
        self.requests.append(
            {"method": self.command, "path": path, "headers": dict(self.headers), "body": body}
        )
        if path == "/_node/stats":
            self._reply(200, NODE_STATS)
        elif path.endswith("/_count"):
            self._reply(200, {"count": 0, "_shards": {"total": 5, "failed": 0}})
        elif path.endswith("/_search"):
            self._reply(200, SEARCH_REPLY)
        else:
            self._reply(404, {"error": "no such path"})

    do_GET = _handle
    do_POST = _handle

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads `requests` instead."""


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback server standing for Logstash and Elasticsearch, and what it was asked."""
    requests: list[dict[str, Any]] = []
    handler = type("Handler", (_Recorder,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """json_exporter at the pinned version with the repository's config; its base URL."""
    binary = shutil.which("json_exporter")
    assert binary, "json_exporter not found: tests/run.sh builds it (pinned-go.sh json_exporter)"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    assert f"version {pinned_version('JSON_EXPORTER_IMAGE')}" in version.stdout + version.stderr
    folder = tmp_path_factory.mktemp("json-exporter")
    password = folder / "password"
    password.write_text(PASSWORD + "\n")
    # The one change to the config: where the password file is (the compose secret's path).
    text = CONFIG.read_text()
    assert text.count(PASSWORD_FILE) == 2, "both Elasticsearch modules read the compose secret"
    config = folder / "config.yml"
    config.write_text(text.replace(PASSWORD_FILE, str(password)))
    port = free_port()
    log = (folder / "exporter.log").open("wb")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            fetch(f"{base}/metrics", timeout_seconds=2)
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                stop_process(process)
                pytest.fail((folder / "exporter.log").read_text()[-3000:])
            time.sleep(0.2)
    yield base
    stop_process(process)
    log.close()


def _probe(exporter: str, module: str, target: str) -> Samples:
    query = urllib.parse.urlencode({"module": module, "target": target})
    status, body = fetch(f"{exporter}/probe?{query}")
    assert status == 200, body
    return parse(body)


def _scrape_params(job: str) -> dict[str, list[str]]:
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    (found,) = [j for j in config["scrape_configs"] if j["job_name"] == job]
    assert found["metrics_path"] == "/probe"
    params: dict[str, list[str]] = found["params"]
    return params


def _probe_job(exporter: str, base: str, job: str) -> Samples:
    """Probe as Prometheus' `job` does (its module, its target's path), on the loopback server."""
    params = _scrape_params(job)
    path = urllib.parse.urlsplit(params["target"][0]).path
    return _probe(exporter, params["module"][0], base + path)


def test_logstash_module_exposes_the_event_and_dead_letter_queue_metrics(
    exporter: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    base, _ = upstream
    samples = _probe_job(exporter, base, "logstash")
    main = (("pipeline", "main"),)
    assert {name: samples[name] for name in samples if name.startswith("logstash_")} == {
        "logstash_events_in_total": {(): 216610.0},
        "logstash_events_filtered_total": {(): 216485.0},
        "logstash_events_out_total": {(): 216480.0},
        "logstash_dlq_queue_size_bytes": {main: 4096.0},
        "logstash_dlq_max_queue_size_bytes": {main: 1073741824.0},
        "logstash_dlq_dropped_events_total": {main: 3.0},
        "logstash_dlq_read_events_total": {main: 5.0},
    }


def test_recent_documents_are_counted_with_the_exporters_credentials(
    exporter: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    base, requests = upstream
    samples = _probe_job(exporter, base, "logs-ingestion")
    assert samples["logs_index_recent_documents"] == {
        (("index", "ai-finance-logs"), ("window", "10m")): 0.0
    }
    (sent,) = [r for r in requests if r["path"] == "/ai-finance-logs-*/_count"]
    token = base64.b64encode(f"logs_exporter:{PASSWORD}".encode()).decode()
    assert sent["method"] == "POST" and sent["headers"]["Authorization"] == f"Basic {token}"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert json.loads(sent["body"]) == {"query": {"range": {"@timestamp": {"gte": "now-10m"}}}}


def test_failed_logins_are_counted_per_service(
    exporter: str, upstream: tuple[str, list[dict[str, Any]]]
) -> None:
    base, requests = upstream
    samples = _probe_job(exporter, base, "logs-failed-logins")
    labels = (("index", "ai-finance-security"), ("window", "5m"))
    assert samples["logs_failed_logins_recent_count"] == {
        tuple(sorted((*labels, ("service", "user-management")))): 40.0,
        tuple(sorted((*labels, ("service", "api-gateway")))): 2.0,
    }
    (sent,) = [r for r in requests if r["path"] == "/ai-finance-security-*/_search"]
    query = json.loads(sent["body"])
    assert query["query"]["bool"]["filter"][:2] == [
        {"term": {"event.category": "authentication"}},
        {"term": {"event.outcome": "failure"}},
    ]
    assert query["aggs"]["services"]["terms"]["field"] == "service.name"


def test_a_target_that_does_not_answer_fails_the_probe(exporter: str) -> None:
    query = urllib.parse.urlencode(
        {"module": "logstash", "target": f"http://127.0.0.1:{free_port()}/_node/stats"}
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        fetch(f"{exporter}/probe?{query}")
    assert raised.value.code == 503
