"""The log pipeline end to end, on the pinned Elastic images: one event of each kind sent to
Logstash's TCP input (JSON lines, port 5000) lands in the general index and in its own, with
its planted secrets redacted; the index templates and ILM policies are attached to the daily
indices; Kibana has the data views and saved searches; Grafana's Elasticsearch datasources are
healthy; and Prometheus scrapes the logs-exporter's Logstash and index metrics.

Needs Elasticsearch, Logstash, Kibana, Filebeat (profile `logs` runs it), Grafana and
json_exporter from a container registry, none of which has a stand-in here (DESIGN.md §8):
where no registry is reachable it skips, naming the images. Run it on a machine that can pull
them with `tests/run.sh -m fullstack` (docs/testing.md).
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from test_stack import compose_down, registry_services, run_script, stack_env, unpullable

from monitoring import elastic
from support.http import json_call
from support.repo import copy_repo
from support.servers import free_port

pytestmark = pytest.mark.fullstack

PROFILES = "logs,dashboards"
PUBLISHED = ("ELASTICSEARCH_PORT", "KIBANA_PORT", "LOGSTASH_TCP_PORT", "GRAFANA_PORT")
WAIT_SECONDS = 180
T = TypeVar("T")
# Planted in the events: none may reach an index. Each is a class the pipeline redacts
# (docs/logs.md, "Redaction"): a password, a bearer token, a card number, an email address.
PASSWORD = secrets.token_urlsafe(12)
TOKEN = "Bearer " + uuid.uuid4().hex + uuid.uuid4().hex
CARD = "4111 1111 1111 1111"
EMAIL = f"alice.{uuid.uuid4().hex[:6]}@example.com"
PLANTED = (PASSWORD, TOKEN.split()[1], CARD, CARD.replace(" ", ""), EMAIL)


@dataclass(frozen=True)
class Event:
    """One log event and the indices (without their date) it must reach."""

    kind: str
    fields: dict[str, Any]
    indices: frozenset[str]


def events(run: str) -> list[Event]:
    """One event of each kind, told apart by `labels.test_run` and `labels.kind`."""
    trace = uuid.uuid4().hex

    def event(kind: str, indices: set[str], **fields: Any) -> Event:
        document = {
            "@timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "log.level": "info",
            "trace.id": trace,
            "span.id": trace[:16],
            "labels": {"test_run": run, "kind": kind},
            **fields,
        }
        return Event(kind, document, frozenset({"ai-finance-logs", *indices}))

    return [
        event(
            "info",
            set(),
            **{"service.name": "api-gateway", "message": f"request served, {TOKEN}"},
        ),
        event(
            "error",
            {"ai-finance-errors"},
            **{
                "service.name": "api-gateway",
                "log.level": "error",
                "message": f"upstream failed with password={PASSWORD}",
                "error.type": "TimeoutError",
            },
        ),
        event(
            "security",
            {"ai-finance-security"},
            **{
                "service.name": "user-management",
                "log.level": "warning",
                "message": f"login failed for {EMAIL}",
                "event.category": ["authentication"],
                "event.outcome": "failure",
            },
        ),
        event(
            "revenue",
            {"ai-finance-revenue"},
            **{"service.name": "payment", "message": f"card {CARD} charged 49.00 EUR"},
        ),
        event(
            "trading",
            {"ai-finance-trading"},
            **{"service.name": "trading", "message": "order filled", "order.type": "limit"},
        ),
    ]


@dataclass(frozen=True)
class Stack:
    root: Path
    env: dict[str, str]

    def url(self, variable: str, path: str) -> str:
        return f"http://127.0.0.1:{self.env[variable]}{path}"

    def password(self, secret: str) -> str:
        return (self.root / "secrets" / secret).read_text().strip()


def _eventually(what: str, probe: Callable[[], T | None]) -> T:
    """probe() until it returns something, every 3s for at most WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: nothing within {WAIT_SECONDS}s")
        time.sleep(3)


@pytest.fixture(scope="module")
def stack(standin_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = copy_repo(tmp_path_factory.mktemp("logs") / "repo")
    env = stack_env(standin_env, f"aif-logs-{uuid.uuid4().hex[:6]}")
    env.update({variable: str(free_port()) for variable in PUBLISHED})
    env["COMPOSE_PROFILES"] = PROFILES
    missing = unpullable(sorted(set(registry_services(root, env).values())), env)
    if missing:
        pytest.skip(
            "needs images from a container registry, which is not reachable here: "
            + ", ".join(missing)
        )
    try:
        started = run_script(root, env, "start", timeout=2400)
        assert started.returncode == 0, (started.stderr + started.stdout)[-6000:]
        yield Stack(root, env)
    finally:
        compose_down(root, env)


@pytest.fixture(scope="module")
def sent(stack: Stack) -> dict[str, Event]:
    """The events of one run, sent as JSON lines to Logstash's TCP input."""
    run = uuid.uuid4().hex
    batch = events(run)
    with socket.create_connection(("127.0.0.1", int(stack.env["LOGSTASH_TCP_PORT"])), 10) as tcp:
        tcp.sendall("".join(json.dumps(e.fields) + "\n" for e in batch).encode())
    return {e.kind: e for e in batch}


def _es(stack: Stack, path: str, body: object = None) -> Any:
    return json_call(
        stack.url("ELASTICSEARCH_PORT", path), "elastic", stack.password("elastic_password"), body
    )


def _hits(stack: Stack, run: str) -> list[dict[str, Any]]:
    query = {"size": 100, "query": {"term": {"labels.test_run": run}}}
    found: list[dict[str, Any]] = _es(stack, "/ai-finance-*/_search", query)["hits"]["hits"]
    return found


def _family(index: str) -> str:
    """ai-finance-errors-2026.12.02 -> ai-finance-errors."""
    return re.sub(r"-\d{4}\.\d{2}\.\d{2}$", "", index)


@pytest.fixture(scope="module")
def indexed(stack: Stack, sent: dict[str, Event]) -> list[dict[str, Any]]:
    """The run's documents, once every event is in every index it must reach (or the wait
    runs out: then the test shows where each event got to)."""
    run = next(iter(sent.values())).fields["labels"]["test_run"]
    wanted = {kind: set(event.indices) for kind, event in sent.items()}
    last: dict[str, set[str]] = {}

    def arrived() -> list[dict[str, Any]] | None:
        hits = _hits(stack, run)
        last.clear()
        for hit in hits:
            last.setdefault(hit["_source"]["labels"]["kind"], set()).add(_family(hit["_index"]))
        return hits if last == wanted else None

    deadline = time.monotonic() + WAIT_SECONDS
    while (hits := arrived()) is None:
        if time.monotonic() > deadline:
            assert last == wanted, "where each event got to"
        time.sleep(3)
    return hits


def test_each_event_reaches_the_general_index_and_its_own(indexed: list[dict[str, Any]]) -> None:
    kinds = {hit["_source"]["labels"]["kind"] for hit in indexed}
    assert kinds == {"info", "error", "security", "revenue", "trading"}
    # One copy per index it belongs to, not more (a pipeline retry would duplicate).
    assert len(indexed) == sum(len(event.indices) for event in events("count"))


def test_no_planted_secret_is_indexed(indexed: list[dict[str, Any]]) -> None:
    text = json.dumps([hit["_source"] for hit in indexed])
    assert [secret for secret in PLANTED if secret in text] == []
    assert "[REDACTED" in text


def test_the_daily_indices_have_their_template_policy_and_no_replica(
    stack: Stack, indexed: list[dict[str, Any]]
) -> None:
    assert indexed  # every family has a daily index now
    for index in elastic.indices():
        assert _es(stack, f"/_index_template/{index.name}")["index_templates"], index.name
        settings = _es(stack, f"/{index.pattern}/_settings")
        for name, found in settings.items():
            assert found["settings"]["index"]["lifecycle"]["name"] == index.policy, name
            assert found["settings"]["index"]["number_of_replicas"] == "0", name
        explained = _es(stack, f"/{index.pattern}/_ilm/explain")["indices"]
        assert {i["policy"] for i in explained.values() if i["managed"]} == {index.policy}
    assert _es(stack, "/_cluster/health")["status"] == "green"


def test_logstash_writes_as_its_own_least_privileged_user(stack: Stack) -> None:
    user = _es(stack, "/_security/user/logstash_internal")["logstash_internal"]
    assert user["roles"] == ["logstash_writer"]
    role = _es(stack, "/_security/role/logstash_writer")["logstash_writer"]
    assert role["indices"][0]["privileges"] == ["create_doc", "auto_configure"]


# The saved searches kibana-setup imports, one per index.
SAVED_SEARCHES = {f"{i.name}-search" for i in elastic.indices()}


def _saved_searches(stack: Stack, user: str, password: str) -> set[str]:
    """The ids of the saved searches `user` finds in Kibana."""
    url = stack.url("KIBANA_PORT", "/api/saved_objects/_find?type=search&per_page=100")
    return {s["id"] for s in json_call(url, user, password)["saved_objects"]}


def test_kibana_has_a_data_view_and_a_saved_search_per_index(stack: Stack) -> None:
    def kibana(path: str) -> Any:
        return json_call(
            stack.url("KIBANA_PORT", path), "elastic", stack.password("elastic_password")
        )

    views = {view["id"]: view for view in kibana("/api/data_views")["data_view"]}
    assert {i.name for i in elastic.indices()} <= set(views)
    view = kibana("/api/data_views/data_view/ai-finance-logs")["data_view"]
    trace_format = view["fieldFormats"]["trace.id"]
    assert trace_format["id"] == "url"
    assert trace_format["params"]["urlTemplate"].endswith("/trace/{{value}}")
    assert SAVED_SEARCHES <= _saved_searches(stack, "elastic", stack.password("elastic_password"))


def test_kibana_setup_imported_as_its_own_user_who_reads_no_logs(
    stack: Stack, indexed: list[dict[str, Any]]
) -> None:
    """kibana-setup ran as kibana_setup (the saved searches above are its import), whose role
    grants Kibana's import privileges and no index in Elasticsearch."""
    user = _es(stack, "/_security/user/kibana_setup")["kibana_setup"]
    assert user["roles"] == ["kibana_importer"]
    password = stack.password("kibana_setup_password")
    assert SAVED_SEARCHES <= _saved_searches(stack, "kibana_setup", password)
    with pytest.raises(urllib.error.HTTPError) as refused:
        json_call(
            stack.url("ELASTICSEARCH_PORT", f"/{indexed[0]['_index']}/_search?size=1"),
            "kibana_setup",
            password,
        )
    assert refused.value.code == 403


def test_the_kibana_viewer_reads_the_saved_searches_and_writes_nothing(
    stack: Stack, indexed: list[dict[str, Any]]
) -> None:
    password = stack.password("logs_viewer_password")
    assert SAVED_SEARCHES <= _saved_searches(stack, "logs_viewer", password)
    hits = json_call(
        stack.url("ELASTICSEARCH_PORT", "/ai-finance-logs-*/_search?size=1"),
        "logs_viewer",
        password,
    )["hits"]["hits"]
    assert hits
    with pytest.raises(urllib.error.HTTPError) as refused:
        json_call(
            stack.url("ELASTICSEARCH_PORT", f"/{hits[0]['_index']}/_doc"),
            "logs_viewer",
            password,
            {"message": "written by a viewer"},
        )
    assert refused.value.code == 403


@pytest.mark.parametrize("uid", ["elasticsearch", "elasticsearch-errors", "elasticsearch-security"])
def test_grafanas_elasticsearch_datasources_are_healthy_and_read_their_index(
    stack: Stack, uid: str, indexed: list[dict[str, Any]]
) -> None:
    password = stack.password("grafana_admin_password")
    health = json_call(
        stack.url("GRAFANA_PORT", f"/api/datasources/uid/{uid}/health"), "admin", password
    )
    assert health["status"] == "OK", health
    # Grafana 11.6's health check reads /_cluster/health and calls a 403 healthy too: a query
    # through the datasource, as the Logs dashboard's panels send it, proves the reader's access.
    query = {
        "refId": "A",
        "datasource": {"type": "elasticsearch", "uid": uid},
        "query": "*",
        "timeField": "@timestamp",
        "metrics": [{"type": "count", "id": "1"}],
        "bucketAggs": [
            {
                "type": "date_histogram",
                "id": "2",
                "field": "@timestamp",
                "settings": {"interval": "auto"},
            }
        ],
    }
    answer = json_call(
        stack.url("GRAFANA_PORT", "/api/ds/query"),
        "admin",
        password,
        {"from": "now-1h", "to": "now", "queries": [query]},
    )
    result = answer["results"]["A"]
    assert "error" not in result and result["frames"], result


def test_prometheus_scrapes_logstash_and_the_index_counts(
    stack: Stack, sent: dict[str, Event], indexed: list[dict[str, Any]]
) -> None:
    def value(query: str) -> float | None:
        url = stack.url(
            "PROMETHEUS_PORT", "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        )
        with urllib.request.urlopen(url, timeout=30) as response:
            result = json.loads(response.read())["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    assert _eventually("Logstash's events", lambda: value("logstash_events_out_total")) >= len(sent)
    recent = _eventually("recent documents", lambda: value("logs_index_recent_documents") or None)
    assert recent >= 1
    failed = 'logs_failed_logins_recent_count{service="user-management"}'
    assert _eventually("failed logins", lambda: value(failed)) >= 1


def test_the_elasticsearch_exporter_reads_as_its_own_monitor_only_user(
    stack: Stack, indexed: list[dict[str, Any]]
) -> None:
    """elasticsearch-exporter logs in as elasticsearch_exporter (cluster monitor, no index): its
    three default collectors answer (cluster-info, cluster health, node stats), and an index
    search is refused."""
    user = _es(stack, "/_security/user/elasticsearch_exporter")["elasticsearch_exporter"]
    assert user["roles"] == ["cluster_monitor_reader"]

    def series(query: str) -> list[Any] | None:
        url = stack.url(
            "PROMETHEUS_PORT", "/api/v1/query?" + urllib.parse.urlencode({"query": query})
        )
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())["data"]["result"] or None

    for metric in (
        "elasticsearch_version",  # the cluster-info collector (GET /)
        "elasticsearch_cluster_health_status",
        "elasticsearch_filesystem_data_size_bytes",
    ):
        assert _eventually(metric, lambda m=metric: series(m)), metric
    with pytest.raises(urllib.error.HTTPError) as refused:
        json_call(
            stack.url("ELASTICSEARCH_PORT", f"/{indexed[0]['_index']}/_search?size=1"),
            "elasticsearch_exporter",
            stack.password("elasticsearch_exporter_password"),
        )
    assert refused.value.code == 403
