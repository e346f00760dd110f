"""Online check of a configuration: every query runs against the datastores, returning no rows."""

from __future__ import annotations

from finance_exporter.config import Settings
from finance_exporter.errors import ConfigProblem, SourceError
from finance_exporter.sources.postgres import PostgresSource
from finance_exporter.sources.redis import RedisSource

CHECK_TIMEOUT_SECONDS = 10.0


def check_online(settings: Settings) -> list[ConfigProblem]:
    """Plan and run each Postgres query with LIMIT 0 and check its columns; ping Redis."""
    problems: list[ConfigProblem] = []
    if settings.uses("postgres") and settings.database_url:
        postgres = PostgresSource(
            settings.database_url, f"finance-exporter-{settings.exporter}-check"
        )
        try:
            for spec in settings.queries:
                if spec.source != "postgres":
                    continue
                params: dict[str, object] = {"low": "0", "high": "0"} if spec.incremental else {}
                if spec.metric.buckets:
                    params["buckets"] = list(spec.metric.buckets)
                wrapped = f"SELECT * FROM ({spec.sql}) AS checked LIMIT 0"
                try:
                    result = postgres.fetch(wrapped, params, CHECK_TIMEOUT_SECONDS)
                except SourceError as err:
                    problems.append(_problem(spec.origin, spec.name, f"{err.reason}: {err}"))
                    continue
                expected = {*spec.metric.key_columns(), *spec.metric.value_columns()}
                if set(result.columns) != expected:
                    got = ", ".join(sorted(result.columns))
                    want = ", ".join(sorted(expected))
                    problems.append(
                        _problem(spec.origin, spec.name, f"returns columns {got}; expected {want}")
                    )
        finally:
            postgres.close()
    if settings.uses("redis") and settings.redis_url:
        redis = RedisSource(settings.redis_url, settings.redis_timeout_seconds)
        try:
            for spec in settings.queries:
                if spec.redis is not None:
                    try:
                        redis.fetch(spec.redis, CHECK_TIMEOUT_SECONDS)
                    except SourceError as err:
                        problems.append(_problem(spec.origin, spec.name, f"{err.reason}: {err}"))
        finally:
            redis.close()
    return problems


def _problem(origin: str, query: str, text: str) -> ConfigProblem:
    file, _, line = origin.rpartition(":")
    if file and line.isdigit():
        return ConfigProblem(file, int(line), f"queries.{query}", text)
    return ConfigProblem(origin, None, f"queries.{query}", text)
