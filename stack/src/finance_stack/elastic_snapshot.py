"""Elasticsearch's snapshot API, for the log indices: snapshot, count, restore.

Written against Elasticsearch 8.18's API (docs/operations.md lists the pages): a shared file
system repository (type fs) at path.repo (elasticsearch/elasticsearch.yml), on the
elasticsearch-snapshots volume; `PUT _snapshot/<repo>/<snap>?wait_for_completion=true` of the
ai-finance-* indices without the cluster state (users, roles, templates and policies are the
setup job's, from the repository's files); restore by deleting the snapshot's indices (by name:
8.x refuses wildcard deletes, action.destructive_requires_name) and `POST .../_restore`.
Runs inside the elastic-worker container (on the compose network, as Elasticsearch's uid, with
its user's password secret), so no password ever reaches the host's command line. It logs in as
USER, whose role (elasticsearch/setup/roles/snapshot_operator.json) grants each call below and
nothing else; docs/operations.md "The workers" lists the calls and the privilege of each.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from finance_stack.stores import ELASTIC_INDICES, ELASTIC_REPOSITORY, ELASTIC_REPOSITORY_PATH

TIMEOUT_SECONDS = 30.0
# A snapshot or restore waits for completion inside one request.
LONG_TIMEOUT_SECONDS = 3600.0
# Index names per DELETE: the request line stays under Elasticsearch's 4 KB limit.
DELETE_BATCH = 40
MAX_INDICES = 10000
# Its user (elasticsearch/setup/users/elasticsearch_snapshot.json), created by elasticsearch-setup
# with the password of secrets/elasticsearch_snapshot_password.
USER = "elasticsearch_snapshot"
ROLE_FILE = "elasticsearch/setup/roles/snapshot_operator.json"
# What a refusal means, for the message.
_REFUSED = {
    401: (
        f"{USER} was refused: ./start-monitoring.sh start (its elasticsearch-setup job creates"
        " the user and sets its password from secrets/elasticsearch_snapshot_password)"
    ),
    403: f"{USER} lacks a privilege for this call: see {ROLE_FILE}",
}


class ElasticError(RuntimeError):
    """A request failed: the method, path, HTTP status and Elasticsearch's reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Client:
    """JSON over HTTP to one Elasticsearch, as USER."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{USER}:{password}".encode()).decode()
        self._auth = f"Basic {token}"

    def call(
        self,
        method: str,
        path: str,
        body: object | None = None,
        ok: tuple[int, ...] = (200,),
        timeout: float = TIMEOUT_SECONDS,
    ) -> Any:
        """The decoded reply; ElasticError unless its status is in `ok`."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Authorization", self._auth)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as err:
            raise ElasticError(f"{method} {path}: {getattr(err, 'reason', err)}") from None
        reply = json.loads(text) if text.strip() else {}
        if status not in ok:
            reason = reply.get("error", {}) if isinstance(reply, dict) else {}
            reason = reason.get("reason", reason) if isinstance(reason, dict) else reason
            hint = f" ({_REFUSED[status]})" if status in _REFUSED else ""
            message = f"{method} {path}: HTTP {status}: {reason or text[:300]}{hint}"
            raise ElasticError(message, status)
        return reply


def register(client: Client) -> None:
    """The fs repository (idempotent); Elasticsearch verifies it can write there."""
    body = {"type": "fs", "settings": {"location": ELASTIC_REPOSITORY_PATH}}
    try:
        client.call("PUT", f"/_snapshot/{ELASTIC_REPOSITORY}", body)
    except ElasticError as err:
        if err.status in _REFUSED:
            raise
        raise ElasticError(
            f"{err}: is {ELASTIC_REPOSITORY_PATH} Elasticsearch's? ./start-monitoring.sh start"
            " (its elasticsearch-setup job gives the elasticsearch-snapshots volume to uid 1000)"
        ) from None


def counts(client: Client) -> dict[str, int]:
    """Documents per ai-finance-* index, after a refresh (an empty index counts 0)."""
    client.call("POST", f"/{ELASTIC_INDICES}/_refresh")
    listed = client.call("GET", f"/_cat/indices/{ELASTIC_INDICES}?format=json&h=index")
    found = dict.fromkeys((row["index"] for row in listed), 0)
    body = {"size": 0, "aggs": {"i": {"terms": {"field": "_index", "size": MAX_INDICES}}}}
    reply = client.call("POST", f"/{ELASTIC_INDICES}/_search", body)
    for bucket in reply.get("aggregations", {}).get("i", {}).get("buckets", []):
        found[bucket["key"]] = int(bucket["doc_count"])
    return dict(sorted(found.items()))


def snapshot(client: Client, name: str) -> dict[str, object]:
    """Counts, then a snapshot of the indices, then the repository's older snapshots deleted
    (the next one is incremental over this one; the archive holds the repository whole)."""
    register(client)
    documents = counts(client)
    reply = client.call(
        "PUT",
        f"/_snapshot/{ELASTIC_REPOSITORY}/{name}?wait_for_completion=true",
        {"indices": ELASTIC_INDICES, "include_global_state": False, "ignore_unavailable": True},
        timeout=LONG_TIMEOUT_SECONDS,
    )
    taken = reply.get("snapshot", {})
    failed = taken.get("shards", {}).get("failed", 0)
    if taken.get("state") != "SUCCESS" or failed:
        raise ElasticError(f"snapshot {name}: state {taken.get('state')}, {failed} shards failed")
    listed = client.call("GET", f"/_snapshot/{ELASTIC_REPOSITORY}/_all")
    older = sorted(s["snapshot"] for s in listed.get("snapshots", []) if s["snapshot"] != name)
    if older:
        client.call("DELETE", f"/_snapshot/{ELASTIC_REPOSITORY}/{','.join(older)}")
    return {"snapshot": name, "indices": documents, "deleted_older": older}


def unregister(client: Client) -> dict[str, object]:
    """Forget the repository (its files stay), before the restore replaces them: a registered
    repository whose files change under it is marked corrupted."""
    client.call("DELETE", f"/_snapshot/{ELASTIC_REPOSITORY}", ok=(200, 404))
    return {"unregistered": ELASTIC_REPOSITORY}


def restore(client: Client, name: str, say: Callable[[str], None]) -> dict[str, object]:
    """Delete the snapshot's indices where they exist, restore them, wait, count."""
    register(client)
    listed = client.call("GET", f"/_snapshot/{ELASTIC_REPOSITORY}/{name}")
    indices = sorted(listed["snapshots"][0]["indices"]) if listed.get("snapshots") else []
    existing = client.call(
        "GET", f"/_cat/indices/{ELASTIC_INDICES}?format=json&h=index&expand_wildcards=all"
    )
    replaced = sorted({row["index"] for row in existing} & set(indices))
    for start in range(0, len(replaced), DELETE_BATCH):
        batch = ",".join(urllib.parse.quote(i) for i in replaced[start : start + DELETE_BATCH])
        client.call("DELETE", f"/{batch}")
    say(f"elasticsearch: deleted {len(replaced)} indices to restore {len(indices)}")
    if not indices:
        return {"snapshot": name, "indices": counts(client), "replaced": []}
    reply = client.call(
        "POST",
        f"/_snapshot/{ELASTIC_REPOSITORY}/{name}/_restore?wait_for_completion=true",
        {"indices": ELASTIC_INDICES, "include_global_state": False, "include_aliases": True},
        timeout=LONG_TIMEOUT_SECONDS,
    )
    failed = reply.get("snapshot", {}).get("shards", {}).get("failed", 0)
    if failed:
        raise ElasticError(f"restore of {name}: {failed} shards failed")
    client.call(
        "GET",
        f"/_cluster/health/{ELASTIC_INDICES}?wait_for_status=yellow&timeout=120s",
        timeout=LONG_TIMEOUT_SECONDS,
    )
    return {"snapshot": name, "indices": counts(client), "replaced": replaced}
