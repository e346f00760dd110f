"""The platform dashboards' panels: hosts, containers and datastores, and the business exporters.

Thresholds are those of prometheus/rules/infrastructure.rules.yml and meta.rules.yml.
"""

from __future__ import annotations

from monitoring.alert_limits import alerting, limit
from monitoring.panels import NO_TARGET, Query, above, below, graph, listing, row, single, up_down
from monitoring.spec import Content

REAL_FS = '{fstype!~"tmpfs|overlay|squashfs|nsfs|ramfs|fuse.*"}'


def _reached(metric: str, job: str) -> str:
    """An exporter's `<thing>_up` (0 when it cannot reach its datastore), or 0 when the exporter
    itself is down. A failed scrape marks every series of the target stale, so `metric` is
    gone while the target's `up` is 0; both carry the target's labels (job, instance), so `or`
    falls back per target, and a target that answers keeps its own value."""
    return f'{metric} or 0 * up{{job="{job}"}}'


def infrastructure() -> Content:
    """Hosts, containers and datastores (uid infrastructure-overview)."""
    disk_used = f"1 - node_filesystem_avail_bytes{REAL_FS} / node_filesystem_size_bytes{REAL_FS}"
    container_limit = (
        'container_memory_working_set_bytes{name!=""}'
        ' / (container_spec_memory_limit_bytes{name!=""} > 0)'
    )
    return Content(
        [
            row("Up"),
            up_down("Prometheus", Query('up{job="prometheus"}', "{{instance}}")),
            up_down("Alertmanager", Query('up{job="alertmanager"}', "{{instance}}")),
            up_down(
                "Postgres",
                Query(_reached("pg_up", "postgres"), "{{instance}}"),
                description=(
                    "pg_up of postgres_exporter: 1 if it reached Postgres; 0 too when the exporter "
                    "itself is down."
                ),
            ),
            up_down(
                "Redis",
                Query(_reached("redis_up", "redis"), "{{instance}}"),
                description=(
                    "redis_up of redis_exporter: 1 if it reached Redis; 0 too when the exporter "
                    "itself is down."
                ),
            ),
            single(
                "Elasticsearch health",
                [Query("max by (color) (elasticsearch_cluster_health_status) == 1", "{{color}}")],
                "none",
                width=4,
                description="The cluster's current colour; yellow and red alert.",
                no_value="unknown",
            ),
            single(
                "Scrape targets down",
                [Query("count(up == 0) or vector(0)", "down")],
                "none",
                threshold=above(1),
                width=4,
                description=f"TargetDown fires per target down for {limit('TargetDown').for_}.",
                no_value=NO_TARGET,
            ),
            listing("Scrape targets", Query("up", instant=True, table=True), height=7),
            row("Hosts"),
            graph(
                "CPU used",
                [
                    Query(
                        '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}'
                        "[$__rate_interval]))",
                        "{{instance}}",
                    )
                ],
                "percentunit",
                width=8,
                **alerting("HostHighCpuUsage", "%"),
            ),
            graph(
                "Memory used",
                [
                    Query(
                        "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
                        "{{instance}}",
                    )
                ],
                "percentunit",
                width=8,
                **alerting("HostLowMemory", "%", complement=True, of="available"),
            ),
            graph(
                "Disk used",
                [Query(disk_used, "{{instance}} {{mountpoint}}")],
                "percentunit",
                width=8,
                **alerting("HostDiskAlmostFull", "%", complement=True, of="free"),
            ),
            row("Containers (cAdvisor)"),
            graph(
                "Container memory working set",
                [Query('container_memory_working_set_bytes{name!=""}', "{{name}}")],
                "bytes",
            ),
            graph(
                "Container memory of its limit",
                [Query(container_limit, "{{name}}")],
                "percentunit",
                **alerting("ContainerMemoryNearLimit", "%"),
            ),
        ]
    )


def exporters() -> Content:
    """The business exporters' own health (uid exporters-health)."""
    errors = (
        "sum by (exporter, query) (rate(finance_exporter_query_errors_total[5m])) / "
        "sum by (exporter, query) (rate(finance_exporter_query_runs_total[5m]))"
    )
    return Content(
        [
            row("Datastores and snapshots"),
            graph(
                "Datastore reachable",
                [Query("finance_exporter_up", "{{exporter}} {{source}}")],
                "none",
                threshold=below(1),
                description=limit("ExporterDatastoreDown").says(),
            ),
            graph(
                "Snapshot age",
                [Query("finance_exporter_snapshot_age_seconds", "{{exporter}}")],
                "s",
                **alerting("ExporterSnapshotStale", "s"),
            ),
            row("Queries"),
            graph(
                "Query duration",
                [Query("finance_exporter_query_duration_seconds", "{{exporter}} {{query}}")],
                "s",
            ),
            graph(
                "Query error ratio (5m)",
                [Query(errors, "{{exporter}} {{query}}")],
                "percentunit",
                **alerting("ExporterQueryErrors", "%"),
            ),
            graph(
                "Query errors by reason",
                [
                    Query(
                        "sum by (query, reason) (rate(finance_exporter_query_errors_total"
                        "[$__rate_interval]))",
                        "{{query}} {{reason}}",
                    )
                ],
                "ops",
            ),
            graph(
                "Time since last successful query",
                [
                    Query(
                        "time() - finance_exporter_query_last_success_timestamp_seconds",
                        "{{exporter}} {{query}}",
                    )
                ],
                "s",
                **alerting("ExporterQueryStale", "s"),
            ),
            graph(
                "Watermark lag",
                [Query("finance_exporter_watermark_lag_seconds", "{{exporter}} {{query}}")],
                "s",
                **alerting("ExporterWatermarkLag", "s"),
            ),
            graph(
                "First fold of history (backfill) progress",
                [Query("finance_exporter_backfill_progress_ratio", "{{exporter}} {{query}}")],
                "percentunit",
                description=(
                    "Share of each incremental query's history folded so far; its counter is "
                    "exposed once this reaches 100%."
                ),
            ),
            graph(
                "First folds failing",
                [Query("finance_exporter_backfill_failing", "{{exporter}} {{query}}")],
                "none",
                **alerting("ExporterBackfillFailing"),
            ),
        ]
    )
