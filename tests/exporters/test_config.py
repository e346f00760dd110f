"""Configuration: every problem reported at once, each with file, line and reason; --check."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from finance_exporter.config import Options, load_settings, mask_url
from finance_exporter.errors import ConfigError

ENV = {"DATABASE_URL": "postgresql://u:p@127.0.0.1:1/db", "REDIS_URL": "redis://127.0.0.1:1/0"}


def problems(path: Path, exporter: str = "revenue") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(Options(exporter=exporter, environ=ENV, config_file=str(path)))
    return [str(p) for p in caught.value.details]


def test_every_problem_is_reported_with_file_and_line(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(
        """min_interval_seconds: -1
colour: blue
queries:
  payments_gross:
    sql: SELECT 1 AS value
    timeout: 3
  nope:
    sql: SELECT 1
  order_queue:
    sql: SELECT 1
    label_values: [high, high]
"""
    )
    assert problems(path) == [
        f"{path}:1: min_interval_seconds: expected a positive number of seconds, got -1",
        f"{path}:2: colour: unknown key; allowed: backfill_timeout_seconds, min_interval_seconds, "
        "queries, "
        "redis_timeout_seconds, scrape_timeout_offset_seconds, scrape_timeout_seconds",
        f"{path}:5: queries.payments_gross.sql: missing placeholder %(high)s",
        f"{path}:5: queries.payments_gross.sql: missing placeholder %(low)s",
        f"{path}:6: queries.payments_gross.timeout: unknown key; allowed: enabled, key_template, "
        "label_values, max_age_seconds, sql, timeout_seconds",
        f"{path}:7: queries.nope: unknown query; known: active_subscriptions, active_users, aum, "
        "churns, daily_return, market_data_age, model_accuracy, mrr, open_positions, "
        "order_queue, orders, payments, payments_gross, refunds, signal_generation_time, "
        "signals_active, signals_closed, signals_generated, signups, trading_volume, var95",
        f"{path}:10: queries.order_queue.sql: a Redis query takes key_template and "
        "label_values, not sql",
        f"{path}:11: queries.order_queue.label_values: values must be unique",
    ]


def test_yaml_syntax_error_names_the_line(write_config: Callable[[str], Path]) -> None:
    path = write_config("queries:\n  mrr:\n    sql: [unclosed\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:4: invalid YAML")


def test_duplicate_key_is_an_error(write_config: Callable[[str], Path]) -> None:
    path = write_config("queries:\n  mrr: {}\n  mrr: {}\n")
    assert problems(path) == [f"{path}:3: mrr: duplicate key"]


def test_override_replaces_sql_and_disables_queries(write_config: Callable[[str], Path]) -> None:
    path = write_config(
        """queries:
  mrr:
    sql: SELECT 'USD' AS currency, 'pro' AS plan, 1 AS value
    timeout_seconds: 2
  churns:
    enabled: false
  order_queue:
    label_values: [urgent]
"""
    )
    settings = load_settings(Options(exporter="revenue", environ=ENV, config_file=str(path)))
    names = [q.name for q in settings.queries]
    assert "churns" not in names and names[0] == "payments_gross"
    mrr = next(q for q in settings.queries if q.name == "mrr")
    assert mrr.sql.startswith("SELECT 'USD'") and mrr.timeout_seconds == 2.0
    assert mrr.origin == f"{path}:2"


def test_missing_connection_settings_are_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(Options(exporter="portfolio", environ={}))
    assert [p.key for p in caught.value.details] == ["DATABASE_URL", "REDIS_URL"]


def test_secrets_come_from_files(tmp_path: Path) -> None:
    secret = tmp_path / "database_url"
    secret.write_text("postgresql://exporter:s3cret@db:5432/platform\n")
    settings = load_settings(
        Options(exporter="revenue", environ={"DATABASE_URL_FILE": str(secret)})
    )
    assert settings.database_url == "postgresql://exporter:s3cret@db:5432/platform"
    assert mask_url(settings.database_url) == "postgresql://exporter:***@db:5432/platform"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finance_exporter", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_check_exits_1_listing_problems_and_0_when_valid(
    write_config: Callable[[str], Path],
) -> None:
    bad = write_config("queries:\n  mrr:\n    sql: ''\n")
    result = _cli("revenue", "--check", "--config", str(bad), env=ENV)
    assert result.returncode == 1
    assert result.stderr == f"error: {bad}:3: queries.mrr.sql: expected a non-empty SQL string\n"
    good = write_config("queries:\n  mrr:\n    timeout_seconds: 1\n")
    result = _cli("revenue", "--check", "--config", str(good), env=ENV)
    assert (result.returncode, result.stdout) == (
        0,
        "ok: revenue exporter, 8 queries, checked offline\n",
    )


def test_check_connect_reports_bad_sql_and_wrong_columns_with_their_line(
    write_config: Callable[[str], Path], database: object
) -> None:
    url = database.exporter_url  # type: ignore[attr-defined]
    path = write_config(
        """queries:
  mrr:
    sql: SELECT plan, 1 AS value FROM subscriptions
  active_users:
    sql: SELECT tier, count(*) AS value FROM no_such_table GROUP BY tier
"""
    )
    result = _cli(
        "revenue", "--check", "--connect", "--config", str(path), env={"DATABASE_URL": url}
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"error: {path}:2: queries.mrr: returns columns plan, value; expected currency, plan, value"
    )
    assert lines[1].startswith(f"error: {path}:4: queries.active_users: query: relation")
    assert len(lines) == 2
