"""Backup and restore's Elasticsearch calls (finance_stack.elastic_snapshot), run against an HTTP
server on loopback that records each request and answers as Elasticsearch 8.18 does: every call
is made as the worker's own user, and every call is one that user's role
(elasticsearch/setup/roles/snapshot_operator.json) grants, by the privileges Elasticsearch 8.18
documents for that API, with no privilege in the role that no call needs. Whether a live 8.18
accepts them is the restore drill's part (tests/live)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from finance_stack import elastic_snapshot
from finance_stack.elastic_snapshot import Client, ElasticError
from finance_stack.stores import ELASTIC_INDICES, ELASTIC_REPOSITORY
from support.json_api import send_json, serving
from support.repo import ROOT

REPO = f"/_snapshot/{ELASTIC_REPOSITORY}"
INDEX = "ai-finance-logs-2025.01.01"
# What the worker reads from its secret file (a test value, made at run time).
PASSWORD = "pw-" + "elasticsearch_snapshot"


@dataclass(frozen=True)
class Needs:
    """What one API call needs: any one of `cluster`, and any one of `indices` on its targets
    (empty: none). From the API's "Prerequisites" in the Elasticsearch 8.18 reference."""

    cluster: frozenset[str] = frozenset()
    indices: frozenset[str] = frozenset()


def _needs(cluster: tuple[str, ...] = (), indices: tuple[str, ...] = ()) -> Needs:
    return Needs(frozenset(cluster), frozenset(indices))


# (method, path pattern) -> what it needs. Repository: the create/verify/delete repository APIs
# name `manage`; Kibana's Snapshot and Restore, which registers repositories, is documented with
# `cluster:admin/repository`. Snapshots: create names `create_snapshot` or `manage`, get
# `monitor_snapshot`, `create_snapshot` or `manage`, restore `manage` or `cluster:admin/snapshot/*`
# (the SLM security page: "take and delete snapshots of any index"). _cat/indices: cluster and
# index `monitor`; cluster health: cluster `monitor`; refresh: index `maintenance`; search:
# index `read`; delete index: index `delete_index` (each also granted by `manage`).
REPOSITORY = ("manage", "cluster:admin/repository/*")
CALLS: dict[tuple[str, str], Needs] = {
    ("PUT", rf"{REPO}"): _needs(REPOSITORY),
    ("DELETE", rf"{REPO}"): _needs(REPOSITORY),
    ("PUT", rf"{REPO}/[^/]+"): _needs(("create_snapshot", "manage", "cluster:admin/snapshot/*")),
    ("GET", rf"{REPO}/[^/]+"): _needs(
        ("monitor_snapshot", "create_snapshot", "manage", "cluster:admin/snapshot/*")
    ),
    ("DELETE", rf"{REPO}/[^/]+"): _needs(("manage", "cluster:admin/snapshot/*")),
    ("POST", rf"{REPO}/[^/]+/_restore"): _needs(("manage", "cluster:admin/snapshot/*")),
    ("GET", r"/_cluster/health/ai-finance-\*"): _needs(("monitor", "manage")),
    ("GET", r"/_cat/indices/ai-finance-\*"): _needs(("monitor", "manage"), ("monitor", "manage")),
    ("POST", r"/ai-finance-\*/_refresh"): _needs(indices=("maintenance", "manage")),
    ("POST", r"/ai-finance-\*/_search"): _needs(indices=("read",)),
    ("DELETE", r"/ai-finance-[^/*]+"): _needs(indices=("delete_index", "manage")),
}


def _role() -> dict[str, Any]:
    return json.loads((ROOT / elastic_snapshot.ROLE_FILE).read_text())


def _needs_of(method: str, path: str) -> Needs:
    found = [n for (m, p), n in CALLS.items() if m == method and re.fullmatch(p, path)]
    assert found, f"{method} {path}: a call with no privilege on record in CALLS"
    return found[0]


@dataclass
class FakeElasticsearch:
    """The recorded requests; `status` answers every request with that status instead."""

    url: str = ""
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    bodies: dict[tuple[str, str], Any] = field(default_factory=dict)
    status: int | None = None

    def reply(self, method: str, path: str) -> object:
        """What Elasticsearch 8.18 answers, for the calls elastic_snapshot makes."""
        if (method, path) == ("GET", f"/_cat/indices/{ELASTIC_INDICES}"):
            return [{"index": INDEX}]
        if path.endswith("/_search"):
            return {"aggregations": {"i": {"buckets": [{"key": INDEX, "doc_count": 3}]}}}
        if (method, path) == ("GET", f"{REPO}/_all"):
            return {"snapshots": [{"snapshot": "older"}, {"snapshot": "taken"}]}
        if method == "GET" and path.startswith(f"{REPO}/"):
            return {"snapshots": [{"snapshot": "taken", "indices": [INDEX]}]}
        if method == "PUT" and path.startswith(f"{REPO}/"):
            return {"snapshot": {"state": "SUCCESS", "shards": {"failed": 0}}}
        if path.endswith("/_restore"):
            return {"snapshot": {"shards": {"failed": 0}}}
        return {"acknowledged": True}


def _handler(es: FakeElasticsearch) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            path = self.path.split("?")[0]
            es.requests.append((self.command, path, self.headers.get("Authorization", "")))
            es.bodies[(self.command, path)] = json.loads(body) if body else None
            status = es.status or 200
            reply = {"error": {"reason": "refused"}} if es.status else es.reply(self.command, path)
            send_json(self, status, reply)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the tests read es.requests."""

    return Handler


@pytest.fixture
def es() -> Iterator[FakeElasticsearch]:
    recorder = FakeElasticsearch()
    with serving(_handler(recorder)) as url:
        recorder.url = url
        yield recorder


def _backup_and_restore(es: FakeElasticsearch) -> None:
    client = Client(es.url, PASSWORD)
    assert elastic_snapshot.snapshot(client, "taken")["deleted_older"] == ["older"]
    elastic_snapshot.unregister(client)
    assert elastic_snapshot.restore(client, "taken", lambda _: None)["replaced"] == [INDEX]


def test_every_call_is_made_as_the_workers_own_user(es: FakeElasticsearch) -> None:
    _backup_and_restore(es)
    token = base64.b64encode(f"elasticsearch_snapshot:{PASSWORD}".encode()).decode()
    assert {auth for _, _, auth in es.requests} == {f"Basic {token}"}


def test_the_user_file_names_the_role_file() -> None:
    user = json.loads((ROOT / "elasticsearch/setup/users/elasticsearch_snapshot.json").read_text())
    assert user["roles"] == [ROOT.joinpath(elastic_snapshot.ROLE_FILE).stem]


def test_the_role_grants_every_call_and_nothing_no_call_needs(es: FakeElasticsearch) -> None:
    _backup_and_restore(es)
    role = _role()
    (indices,) = role["indices"]
    assert indices["names"] == [ELASTIC_INDICES]
    cluster, index = set(role["cluster"]), set(indices["privileges"])
    used_cluster: set[str] = set()
    used_index: set[str] = set()
    for method, path, _ in es.requests:
        needs = _needs_of(method, path)
        if needs.cluster:
            assert cluster & needs.cluster, f"{method} {path}: needs one of {sorted(needs.cluster)}"
            used_cluster |= cluster & needs.cluster
        if needs.indices:
            assert index & needs.indices, f"{method} {path}: needs one of {sorted(needs.indices)}"
            used_index |= index & needs.indices
    assert (cluster - used_cluster, index - used_index) == (set(), set())
    # None of the broad ones: every call has a narrower privilege than these.
    assert not (cluster | index) & {"all", "manage", "manage_security"}


def test_snapshot_and_restore_carry_the_log_indices_only(es: FakeElasticsearch) -> None:
    """No cluster state and no feature state (system indices) either way: 8.18 takes and
    restores no feature state when include_global_state is false and feature_states is unset."""
    _backup_and_restore(es)
    taken = es.bodies[("PUT", f"{REPO}/taken")]
    restored = es.bodies[("POST", f"{REPO}/taken/_restore")]
    for body in (taken, restored):
        assert body["indices"] == ELASTIC_INDICES
        assert body["include_global_state"] is False
        assert "feature_states" not in body


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (
            401,
            "elasticsearch_snapshot was refused: ./start-monitoring.sh start (its"
            " elasticsearch-setup job creates the user and sets its password from"
            " secrets/elasticsearch_snapshot_password)",
        ),
        (
            403,
            "elasticsearch_snapshot lacks a privilege for this call: see"
            " elasticsearch/setup/roles/snapshot_operator.json",
        ),
    ],
)
def test_a_refusal_says_what_to_do(es: FakeElasticsearch, status: int, hint: str) -> None:
    es.status = status
    with pytest.raises(ElasticError) as refused:
        elastic_snapshot.register(Client(es.url, PASSWORD))
    assert str(refused.value) == f"PUT {REPO}: HTTP {status}: refused ({hint})"
