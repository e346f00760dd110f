"""An incremental refresh reads the rows made final since its watermark, not the whole table."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from finance_demo.seed import SeedPlan, seed_postgres
from finance_exporter.checkpoint import CheckpointStore
from finance_exporter.domains import DOMAINS
from finance_exporter.loader import QueryLoader
from finance_exporter.snapshot import SystemClock
from finance_exporter.sources.postgres import PostgresSource
from support.datastores import Database
from support.rows import add_payments, rows_read

INCREMENTAL = [q for q in DOMAINS["revenue"] if q.incremental and q.source == "postgres"]
TABLES = ("payments", "refunds", "users")
SEEDED_PAYMENTS = 20_000
NEW = 50


def _reads_after(source: PostgresSource, database: Database) -> dict[str, int]:
    """Rows read per table once `source`'s backend (and every other client's) has gone: a
    backend flushes its table statistics when it exits, before it leaves pg_stat_activity (and
    at most once a second while it lives), so closing it makes the count exact and at once."""
    source.close()
    deadline = time.monotonic() + 30
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        while (
            others := conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()
        ) != (0,):
            assert time.monotonic() < deadline, f"{others} other backends still connected after 30s"
            time.sleep(0.02)
    return rows_read(database.admin_url, TABLES)


def test_an_incremental_refresh_reads_only_the_new_rows(
    database: Database, postgres: PostgresSource, tmp_path: Path
) -> None:
    with psycopg.connect(database.admin_url) as conn:
        seed_postgres(conn, SeedPlan(payments=SEEDED_PAYMENTS, seed=5, anchor=datetime.now(UTC)))
        conn.commit()
    clock = SystemClock()
    loader = QueryLoader(
        INCREMENTAL, postgres, None, CheckpointStore(tmp_path / "c.json"), clock
    )  # no background fold: the first refresh folds the whole history itself
    before = rows_read(database.admin_url, TABLES)
    first = loader.load(loader.initial(), clock.monotonic() + 60)
    assert all(state.last_success for state in first.queries.values())
    folded = _reads_after(postgres, database)
    assert folded["payments"] - before["payments"] >= SEEDED_PAYMENTS  # the history, once

    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        add_payments(conn, NEW)  # one new user, NEW payments in transactions of their own
    folded = _reads_after(postgres, database)  # less what the inserts read (foreign keys)
    second = loader.load(first, clock.monotonic() + 60)
    read = _reads_after(postgres, database)
    delta = {table: read[table] - folded[table] for table in TABLES}
    loader.load(second, clock.monotonic() + 60)  # nothing new since: the fixed cost
    idle = {t: n - read[t] for t, n in _reads_after(postgres, database).items()}
    # A refresh with nothing new reads a few rows (the range scans' boundaries), not 20,000.
    assert max(idle.values()) <= 4, idle
    # On top of that, two queries read each new payment (gross and count), the refunds query
    # no payment (no new refund), the signups and churns queries the one new user.
    assert delta["payments"] <= 2 * NEW + idle["payments"], (delta, idle)
    assert delta["refunds"] <= idle["refunds"], (delta, idle)
    assert delta["users"] <= 2, (delta, idle)
    payments = second.queries["payments"].values
    assert (
        sum(v[0] for v in payments.values())
        - sum(v[0] for v in first.queries["payments"].values.values())
        == NEW
    )
