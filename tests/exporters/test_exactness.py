"""Incremental totals stay exact under concurrent, out-of-order commits and across restarts.

Resuming from the checkpoint itself is tested in test_checkpoint.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

from support.datastores import Database, RedisDb, StartExporter
from support.exposition import Samples, by_label, scrape

FAST_REFRESH = "min_interval_seconds: 0.001\n"

# Full recounts, written independently of the exporter's queries: (metric, labels, SQL).
RECOUNTS = (
    (
        "finance_payments_gross_amount_total",
        ("currency", "plan", "source"),
        "SELECT currency, plan, source, sum(amount) FROM payments WHERE status = 'succeeded' "
        "GROUP BY 1, 2, 3",
    ),
    (
        "finance_payments_total",
        ("status", "method"),
        "SELECT status, method, count(*) FROM payments WHERE status <> 'pending' GROUP BY 1, 2",
    ),
    (
        "finance_refunds_amount_total",
        ("currency", "plan", "source"),
        "SELECT p.currency, p.plan, p.source, sum(r.amount) FROM payments p "
        "JOIN refunds r ON r.payment_id = p.id GROUP BY 1, 2, 3",
    ),
    ("finance_user_signups_total", ("tier",), "SELECT tier, count(*) FROM users GROUP BY 1"),
    (
        "finance_user_churns_total",
        ("tier",),
        "SELECT tier, count(*) FROM users WHERE status = 'churned' GROUP BY 1",
    ),
)


def recount(admin_url: str) -> dict[str, dict[tuple[str, ...], float]]:
    """Every revenue counter recomputed from scratch over the committed rows."""
    with psycopg.connect(admin_url) as conn:
        return {
            metric: {tuple(row[:-1]): float(row[-1]) for row in conn.execute(sql).fetchall()}
            for metric, _, sql in RECOUNTS
        }


def exposed(samples: Samples) -> dict[str, dict[tuple[str, ...], float]]:
    """The same counters as the exporter serves them."""
    return {metric: by_label(samples, metric, *labels) for metric, labels, _ in RECOUNTS}


def _user(conn: psycopg.Connection[tuple[object, ...]], tier: str) -> int:
    row = conn.execute(
        "INSERT INTO users (email, tier) VALUES (gen_random_uuid()::text, %s) RETURNING id", (tier,)
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _payment(
    conn: psycopg.Connection[tuple[object, ...]], user: int, status: str, amount: str
) -> int:
    row = conn.execute(
        "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
        "VALUES (%s, %s, 'EUR', 'pro', 'card', 'web', %s) RETURNING id",
        (user, amount, status),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_transaction_held_open_is_counted_once_after_it_commits(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
) -> None:
    exporter = start_exporter(
        "revenue",
        database.exporter_url,
        redis_db.exporter_url,
        config_file=write_config(FAST_REFRESH),
    )
    with psycopg.connect(database.admin_url, autocommit=True) as setup:
        user = _user(setup, "pro")
    early = psycopg.connect(database.admin_url)  # begins its transaction first, commits last
    late = psycopg.connect(database.admin_url)
    try:
        _payment(early, user, "succeeded", "100.00")
        _payment(late, user, "succeeded", "7.00")
        late.commit()
        # The late row is committed but above the oldest running transaction: not yet counted.
        gross = by_label(scrape(exporter), "finance_payments_gross_amount_total", "currency")
        assert gross == {}
        early.commit()
        gross = by_label(scrape(exporter), "finance_payments_gross_amount_total", "currency")
        assert gross == {("EUR",): 107.0}
        gross = by_label(scrape(exporter), "finance_payments_gross_amount_total", "currency")
        assert gross == {("EUR",): 107.0}
    finally:
        early.close()
        late.close()


def _writer(admin_url: str, seed: int, stop: threading.Event, errors: list[BaseException]) -> None:
    """Random platform writes, some transactions held open while others commit."""
    rng = random.Random(seed)
    tiers = ("free", "basic", "pro", "enterprise")
    methods = ("card", "bank_transfer", "paypal", "crypto")
    try:
        with psycopg.connect(admin_url) as conn:
            pending: list[int] = []
            while not stop.is_set():
                user = _user(conn, rng.choice(tiers))
                for _ in range(rng.randint(1, 4)):
                    status = rng.choice(("succeeded", "failed", "pending", "pending"))
                    conn.execute(
                        "INSERT INTO payments (user_id, amount, currency, plan, method, source, "
                        "status) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                        (
                            user,
                            f"{rng.randint(1, 99999) / 100:.2f}",
                            rng.choice(("USD", "EUR")),
                            rng.choice(("basic", "pro")),
                            rng.choice(methods),
                            rng.choice(("web", "api")),
                            status,
                        ),
                    )
                    row = conn.execute("SELECT lastval()").fetchone()
                    assert row is not None
                    payment = int(str(row[0]))
                    if status == "pending":
                        pending.append(payment)
                    elif status == "succeeded" and rng.random() < 0.3:
                        conn.execute(
                            "INSERT INTO refunds (payment_id, amount) VALUES (%s, 1.25)", (payment,)
                        )
                if pending and rng.random() < 0.5:
                    conn.execute(
                        "UPDATE payments SET status = %s WHERE id = %s",
                        (rng.choice(("succeeded", "failed")), pending.pop(0)),
                    )
                if rng.random() < 0.2:
                    conn.execute("UPDATE users SET status = 'churned' WHERE id = %s", (user,))
                # Hold some transactions open so later ones commit first.
                time.sleep(rng.choice((0.0, 0.0, 0.01, 0.05, 0.2)))
                if rng.random() < 0.1:
                    conn.rollback()  # aborted work must never be counted
                else:
                    conn.commit()
    except BaseException as err:
        errors.append(err)


def test_concurrent_out_of_order_writers_and_restart_equal_full_recount(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    config = write_config(FAST_REFRESH)
    checkpoints = tmp_path / "checkpoints"
    exporter = start_exporter(
        "revenue",
        database.exporter_url,
        redis_db.exporter_url,
        config_file=config,
        checkpoint_dir=checkpoints,
    )
    stop = threading.Event()
    errors: list[BaseException] = []
    writers = [
        threading.Thread(target=_writer, args=(database.admin_url, seed, stop, errors))
        for seed in range(4)
    ]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 6
    scrapes = 0
    while time.monotonic() < deadline:
        scrape(exporter)  # folds while writers hold transactions open
        scrapes += 1
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    assert errors == []
    assert scrapes > 20

    expected = recount(database.admin_url)
    assert sum(len(v) for v in expected.values()) > 10  # the writers produced real variety
    assert exposed(scrape(exporter)) == expected

    # Restart: a new exporter process state from the checkpoint, after more writes.
    exporter.server.shutdown()
    exporter.close()
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        _payment(conn, _user(conn, "basic"), "succeeded", "42.42")
    restarted = start_exporter(
        "revenue",
        database.exporter_url,
        redis_db.exporter_url,
        config_file=config,
        checkpoint_dir=checkpoints,
    )
    assert exposed(scrape(restarted)) == recount(database.admin_url)
