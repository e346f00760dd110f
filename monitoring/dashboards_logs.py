"""The Logs dashboard: log volume by service and level, errors and security events from the log
indices (one Elasticsearch datasource per index, grafana/provisioning/datasources/), and the
pipeline's own health from Prometheus (the logs-exporter's Logstash and index metrics)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import elasticsearch as es
from grafana_foundation_sdk.builders import logs, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import elasticsearch as es_models

from monitoring.panels import Query, graph, row
from monitoring.spec import Content

# Datasource uid of each index family (grafana/provisioning/datasources/datasources.yml).
GENERAL = "elasticsearch"
ERRORS = "elasticsearch-errors"
SECURITY = "elasticsearch-security"
FAILED_LOGINS = "event.category:authentication AND event.outcome:failure"
TOP = "10"  # series per panel: the busiest terms, the others are not drawn


def _source(uid: str) -> models.DataSourceRef:
    return models.DataSourceRef(type_val="elasticsearch", uid=uid)


def _count_by(uid: str, field: str, query: str) -> es.Dataquery:
    """Documents per time bucket, one series per value of `field` (the TOP busiest)."""
    terms = (
        es.ElasticsearchTermsSettings()
        .size(TOP)
        .order(es_models.TermsOrder.DESC)
        .order_by("_count")
        .min_doc_count("1")
    )
    return (
        es.Dataquery()
        .ref_id("A")
        .datasource(_source(uid))
        .query(query)
        .time_field("@timestamp")
        .metrics([es.Count().id("1")])
        .bucket_aggs(
            [
                es.Terms().id("2").field(field).settings(terms),
                es.DateHistogram()
                .id("3")
                .field("@timestamp")
                .settings(es.ElasticsearchDateHistogramSettings().interval("auto")),
            ]
        )
    )


def volume(
    title: str, uid: str, field: str, *, query: str = "*", description: str
) -> timeseries.Panel:
    """Stacked bars of log documents per bucket, split by `field`."""
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(_source(uid))
        .targets([_count_by(uid, field, query)])
        .unit("short")
        .span(12)
        .height(8)
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    )


def lines(title: str, uid: str, *, query: str = "*", description: str) -> logs.Panel:
    """The newest log lines of one index, with their fields (trace.id links to Jaeger)."""
    target = (
        es.Dataquery()
        .ref_id("A")
        .datasource(_source(uid))
        .query(query)
        .time_field("@timestamp")
        .metrics([es.Logs().id("1")])
    )
    return (
        logs.Panel()
        .title(title)
        .description(description)
        .datasource(_source(uid))
        .targets([target])
        .span(24)
        .height(10)
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .sort_order(common.LogsSortOrder.DESCENDING)
    )


def logs_overview() -> Content:
    """Volume, errors and security events from Elasticsearch; the pipeline from Prometheus."""
    return Content(
        [
            row("Volume"),
            volume(
                "Log lines by service",
                GENERAL,
                "service.name",
                description="Every event reaches the general index (ai-finance-logs-*).",
            ),
            volume(
                "Log lines by level",
                GENERAL,
                "log.level",
                description="log.level of every event in the general index.",
            ),
            row("Errors"),
            volume(
                "Errors by service",
                ERRORS,
                "service.name",
                description="The errors index (ai-finance-errors-*): error levels, error.* fields,"
                " 5xx responses.",
            ),
            volume(
                "Errors by type",
                ERRORS,
                "error.type",
                description="error.type of the events that have one.",
            ),
            lines("Newest errors", ERRORS, description="The newest events of the errors index."),
            row("Security"),
            volume(
                "Security events by outcome",
                SECURITY,
                "event.outcome",
                description="The security index (ai-finance-security-*): logins, sessions and"
                " access changes.",
            ),
            volume(
                "Failed logins by service",
                SECURITY,
                "service.name",
                query=FAILED_LOGINS,
                description="Authentication events whose outcome is failure; FailedLoginBurstInLogs"
                " fires above 300 in 5 minutes for one service.",
            ),
            lines(
                "Newest security events",
                SECURITY,
                description="The newest events of the security index.",
            ),
            row("Pipeline"),
            graph(
                "Logstash events",
                [
                    Query('sum(rate(logstash_events_in_total{job="logstash"}[5m]))', "in"),
                    Query('sum(rate(logstash_events_out_total{job="logstash"}[5m]))', "out"),
                ],
                "ops",
                description="Events per second into Logstash's inputs and out of its outputs.",
            ),
            graph(
                "Dead-letter queue",
                [
                    Query(
                        'sum by (pipeline) (logstash_dlq_queue_size_bytes{job="logstash"})',
                        "{{pipeline}}",
                    )
                ],
                "bytes",
                description="Documents Elasticsearch refused (LogstashDeadLetterQueueGrowing"
                " fires when it grows).",
            ),
        ]
    )
