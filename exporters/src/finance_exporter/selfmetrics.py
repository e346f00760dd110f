"""The exporter's own metric names and help texts."""

from __future__ import annotations

UP = "finance_exporter_up"
UP_HELP = "1 if the datastore answered during the latest refresh, 0 if it refused or timed out."

QUERY_SUCCESS = "finance_exporter_query_success"
QUERY_SUCCESS_HELP = "1 if the query's latest run succeeded, else 0."

QUERY_DURATION = "finance_exporter_query_duration_seconds"
QUERY_DURATION_HELP = "Duration of the query's latest run."

QUERY_LAST_SUCCESS = "finance_exporter_query_last_success_timestamp_seconds"
QUERY_LAST_SUCCESS_HELP = "Unix time of the query's latest successful run."

QUERY_RUNS = "finance_exporter_query_runs_total"
QUERY_RUNS_HELP = "Runs of the query, successful or not."

QUERY_ERRORS = "finance_exporter_query_errors_total"
QUERY_ERRORS_HELP = (
    "Failed runs of the query, by reason (unavailable, timeout, query, deadline, internal)."
)

SKIPPED_VALUES = "finance_exporter_skipped_values_total"
SKIPPED_VALUES_HELP = (
    "Values skipped as bad data, by query and reason (null, null_label, not_numeric, not_finite, "
    "negative, wrong_type, missing, future_timestamp, series_limit)."
)

SNAPSHOT_AGE = "finance_exporter_snapshot_age_seconds"
SNAPSHOT_AGE_HELP = "Seconds since the served snapshot was refreshed."

WATERMARK_LAG = "finance_exporter_watermark_lag_seconds"
WATERMARK_LAG_HELP = (
    "Seconds since an incremental query's watermark last advanced; it grows while a long "
    "transaction holds back the oldest-running-transaction horizon."
)

BACKFILL_IN_PROGRESS = "finance_exporter_backfill_in_progress"
BACKFILL_IN_PROGRESS_HELP = (
    "1 while an incremental query's first fold of its history runs in the background (its "
    "metric is left out until the fold is complete), else 0."
)

BACKFILL_PROGRESS = "finance_exporter_backfill_progress_ratio"
BACKFILL_PROGRESS_HELP = (
    "Share of an incremental query's history folded, 0..1: the transaction-id range done over the "
    "range to fold, from the first row found; 1 once its totals are complete."
)

BACKFILL_FAILING = "finance_exporter_backfill_failing"
BACKFILL_FAILING_HELP = (
    "1 while the latest attempt of an incremental query's first fold failed (datastore down, SQL "
    "error, missing privilege; logged as 'backfill failing' with the reason); it is retried."
)

REFRESH_REASONS = ("unavailable", "timeout", "query", "deadline", "internal")
