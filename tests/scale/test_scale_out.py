"""Scale-out on existing engines, live on loopback (docs/scale-out.md): the pinned Prometheus
scrapes two replicas of the revenue exporter over one real Postgres and remote-writes into a
two-node Thanos Receive hashring; Thanos Query answers the same PromQL as Prometheus, with the
replicas deduplicated into one series; a gossip pair of Alertmanagers, both sent the same alert
by Prometheus, notifies once."""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from support.scale_cluster import ALERT, PAYMENTS, PEER_TIMEOUT_SECONDS, REPLICAS, Cluster

POLL_SECONDS = 0.5
DATA_TIMEOUT_SECONDS = 60.0


def api(base: str, query: str, at: float, **params: str) -> list[dict[str, Any]]:
    """An instant query's result vector from a Prometheus-compatible /api/v1/query."""
    encoded = urllib.parse.urlencode({"query": query, "time": f"{at:.3f}", **params})
    with urllib.request.urlopen(f"{base}/api/v1/query?{encoded}", timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def as_map(
    result: list[dict[str, Any]], drop: set[str]
) -> dict[tuple[tuple[str, str], ...], float]:
    """label set (without `drop`) → value."""
    return {
        tuple(sorted((k, v) for k, v in entry["metric"].items() if k not in drop)): float(
            entry["value"][1]
        )
        for entry in result
    }


def _wait_for(what: str, check: Callable[[], bool], timeout: float = DATA_TIMEOUT_SECONDS) -> None:
    # poll every POLL_SECONDS, at most `timeout`
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_SECONDS)


# ---- (a) the same PromQL through Thanos Query as through Prometheus -------------------------

# Labels only the cluster adds: Prometheus' external labels (attached to what it remote-writes),
# the receivers' tenant and their own replica label.
CLUSTER_LABELS = {"stack", "tenant_id", "receive_replica"}
SAME_QUERIES = (
    "up",
    "finance_payments_total",
    "prometheus_tsdb_head_series",
    "rate(prometheus_http_requests_total[10s])",
    "sum by (job) (up)",
    "sum by (status) (finance_payments_total)",
)


def _close(left: dict[Any, float], right: dict[Any, float]) -> bool:
    return left.keys() == right.keys() and all(
        math.isclose(left[k], right[k], rel_tol=1e-9, abs_tol=1e-12) for k in left
    )


def _history(cluster: Cluster) -> float:
    """An evaluation time at which Prometheus has every target's series with 10s of history
    before it (a rate() window), and Thanos has every series with a sample after it."""

    def prometheus_ready() -> bool:
        found = api(cluster.prometheus, "min(count_over_time(up[12s]))", time.time())
        payments = api(cluster.prometheus, "count(finance_payments_total)", time.time())
        return bool(found and payments) and float(found[0]["value"][1]) >= 5

    _wait_for("12s of every target in Prometheus", prometheus_ready)
    at = time.time() - 1

    def landed() -> bool:
        local = api(cluster.prometheus, "count(up)", at)
        remote = api(cluster.query, f"count(timestamp(up) > {at:f})", time.time(), dedup="false")
        return bool(local and remote) and local[0]["value"][1] == remote[0]["value"][1]

    _wait_for("the samples after that time in Thanos", landed)
    return at


def test_thanos_query_answers_the_same_promql_as_prometheus(cluster: Cluster) -> None:
    """Without deduplication (dedup=false) Thanos holds exactly what Prometheus scraped: the same
    series and values at the same evaluation time, through the remote-write path."""
    at = _history(cluster)
    for query in SAME_QUERIES:
        local = as_map(api(cluster.prometheus, query, at), set())
        remote = as_map(api(cluster.query, query, at, dedup="false"), CLUSTER_LABELS)
        assert local, query
        assert _close(local, remote), f"{query}:\nprometheus {local}\nthanos {remote}"


# ---- (b) two exporter replicas, one series ----------------------------------------------------


def _payments(cluster: Cluster, base: str, query: str, at: float) -> dict[Any, float]:
    return as_map(api(base, query, at), CLUSTER_LABELS)


def _key(status: str, replica: str | None = None) -> tuple[tuple[str, str], ...]:
    labels = {"__name__": "finance_payments_total", "exporter": "revenue"}
    labels |= {"instance": "revenue-exporter", "job": "finance-exporter"}
    labels |= {"method": "card", "status": status} | ({"replica": replica} if replica else {})
    return tuple(sorted(labels.items()))


def test_two_exporter_replicas_are_one_series_after_dedup(cluster: Cluster) -> None:
    at = _history(cluster)
    raw = _payments(cluster, cluster.prometheus, "finance_payments_total", at)
    # Prometheus keeps one series per replica, with the same value: the database's.
    assert raw == {_key(s, r): float(n) for s, n in PAYMENTS.items() for r in REPLICAS}
    deduplicated = _payments(cluster, cluster.query, "finance_payments_total", at)
    assert deduplicated == {_key(s): float(n) for s, n in PAYMENTS.items()}
    total = float(sum(PAYMENTS.values()))
    # The naive sum over replicas counts every payment twice; Thanos' does not, and neither does
    # Prometheus' own `max without (replica)`, the single-machine way (docs/scale-out.md).
    assert _payments(cluster, cluster.prometheus, "sum(finance_payments_total)", at) == {
        (): 2 * total
    }
    assert _payments(cluster, cluster.query, "sum(finance_payments_total)", at) == {(): total}
    assert _payments(
        cluster, cluster.prometheus, "sum(max without (replica) (finance_payments_total))", at
    ) == {(): total}


# ---- (c) an Alertmanager pair, one notification -----------------------------------------------


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_alertmanager_pair_sends_one_notification_for_one_alert(cluster: Cluster) -> None:
    for url in cluster.alertmanagers:
        _wait_for(
            f"{url} in a cluster of two",
            lambda u=url: len(_get(f"{u}/api/v2/status")["cluster"]["peers"]) == 2,
        )

    def has_alert(url: str) -> bool:
        return any(a["labels"]["alertname"] == ALERT for a in _get(f"{url}/api/v2/alerts"))

    for url in cluster.alertmanagers:
        _wait_for(f"{ALERT} at {url}", lambda u=url: has_alert(u))
    _wait_for("a notification", lambda: bool(cluster.sink.log.list()))
    # What must not arrive: the second peer's own notification, after its peer-timeout wait.
    time.sleep(3 * PEER_TIMEOUT_SECONDS + 2)
    # The route of severity=warning, team=platform: the platform receiver (Slack, at the sink).
    received = [(e.path, ALERT in json.dumps(e.body)) for e in cluster.sink.log.list()]
    assert received == [("/slack/platform", True)]
