"""What `backup` captures and `restore` puts back, as data: each store, its service and volume,
the uid that owns its files, how it is copied; and why every other compose volume is left out.

A store's worker (the volume-worker service, docs/operations.md) runs as the uid that owns the
store's files, so it reads and writes them without root: the upstream images' own users. Root
only where the files are root's (Uptime Kuma's image runs as root) or belong to many uids
(./secrets, each file its reader's).
"""

from __future__ import annotations

from dataclasses import dataclass

from finance_stack.secrets import ALERTMANAGER_UID, ELASTIC_UID, GRAFANA_UID

# prom/prometheus runs as nobody (65534:65534), as does its stand-in (tests/live/images).
PROMETHEUS_UID = 65534
# Jaeger's image: USER 10001 with no group of its own, so its files are 10001:0.
JAEGER_UID = 10001
ROOT_UID = 0

# How a store is copied:
#   prometheus     paused for a hard-link snapshot inside its volume (finance_stack.tsdb), which
#                  is archived after the unpause
#   files          named files only, no pause: the service writes them by atomic rename
#   paused-volume  the whole volume, read while the service is paused (crash-consistent)
#   elasticsearch  Elasticsearch's snapshot API into its repository volume, then that volume
#   secrets        the ./secrets folder (a bind mount), as one inner tar, encrypted if asked
METHODS = ("prometheus", "files", "paused-volume", "elasticsearch", "secrets")

# Alertmanager writes its silences and notification log to disk every maintenance interval
# (--data.maintenance-interval in docker-compose.yml; tests/config checks they agree) and keeps
# an expired silence for its retention (--data.retention, the default) before dropping it.
ALERTMANAGER_MAINTENANCE_SECONDS = 5
ALERTMANAGER_RETENTION_SECONDS = 120 * 3600

# Elasticsearch's snapshot repository: path.repo in elasticsearch/elasticsearch.yml, the
# elasticsearch-snapshots volume mounted there, and the repository's registered name.
ELASTIC_REPOSITORY = "ai-finance-backup"
ELASTIC_REPOSITORY_PATH = "/usr/share/elasticsearch/snapshots"
# The indices backed up: every index the log pipeline writes (logs/rules.yml, DESIGN.md §2).
ELASTIC_INDICES = "ai-finance-*"


@dataclass(frozen=True)
class Store:
    """One thing `backup` archives, in the archive folder of its name."""

    name: str
    service: str | None  # the compose service that must be running; None: always there
    volume: str | None  # the compose volume (None: ./secrets, a bind mount)
    uid: int
    gid: int
    method: str
    files: tuple[str, ...] = ()  # method "files": only these
    # Services stopped during the restore besides the store's own (those that write into it);
    # `stops` says whether the store's own service stops (Elasticsearch restores through its API).
    writers: tuple[str, ...] = ()
    stops: bool = True


STORES: tuple[Store, ...] = (
    Store(
        "prometheus", "prometheus", "prometheus-data", PROMETHEUS_UID, PROMETHEUS_UID, "prometheus"
    ),
    Store(
        "alertmanager",
        "alertmanager",
        "alertmanager-data",
        ALERTMANAGER_UID,
        ALERTMANAGER_UID,
        "files",
        files=("nflog", "silences"),
    ),
    Store("grafana", "grafana", "grafana-data", GRAFANA_UID, 0, "paused-volume"),
    Store("uptime-kuma", "uptime-kuma", "uptime-kuma-data", ROOT_UID, 0, "paused-volume"),
    Store("jaeger", "jaeger", "jaeger-data", JAEGER_UID, 0, "paused-volume"),
    Store(
        "elasticsearch",
        "elasticsearch",
        "elasticsearch-snapshots",
        ELASTIC_UID,
        0,
        "elasticsearch",
        writers=("logstash",),
        stops=False,
    ),
    Store("secrets", None, None, ROOT_UID, 0, "secrets"),
)
BY_NAME = {store.name: store for store in STORES}

# Every other volume of docker-compose.yml, and why it is not in the archive. A volume that is
# neither a store's nor listed here is reported by `backup` (and fails tests/stack), so a new
# volume gets a decision.
NOT_BACKED_UP: dict[str, str] = {
    "elasticsearch-data": (
        "Elasticsearch's data: captured through its snapshot API (store elasticsearch), never"
        " copied from under a running node"
    ),
    "exporter-checkpoints": (
        "the exporters' watermarks: without them an exporter folds its totals again from the"
        " database, to the same values"
    ),
    "demo-postgres-data": "the demo's database: demo-setup seeds it again",
    "demo-redis-data": "the demo's Redis: the demo platform fills it again",
    "logstash-data": (
        "Logstash's dead-letter queue and its reader's offsets: events in flight, not history"
    ),
    "filebeat-data": (
        "Filebeat's read offsets: without them it ships the container logs still on disk again"
        " (duplicates, nothing lost)"
    ),
}


def unaccounted(volumes: list[str]) -> list[str]:
    """The compose volumes that are neither a store's nor in NOT_BACKED_UP, sorted."""
    covered = {store.volume for store in STORES} | set(NOT_BACKED_UP)
    return sorted(set(volumes) - covered)
