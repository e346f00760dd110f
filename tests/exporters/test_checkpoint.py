"""Checkpoint of incremental totals: exact round trip, atomic replace, bad files ignored."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from finance_exporter.aggregate import Totals
from finance_exporter.checkpoint import (
    FORMAT_VERSION,
    CheckpointStore,
    Entry,
    Partial,
    fingerprint,
)
from finance_exporter.domains.revenue import PAYMENTS_GROSS
from support.datastores import Database, RedisDb, StartExporter
from support.exposition import by_label, scrape

ENTRY = Entry(
    fingerprint=fingerprint(PAYMENTS_GROSS),
    database="7300000000000000001/16384",
    totals=Totals(
        watermark=1234,
        values={
            ("EUR", "pro", "web"): (Decimal("10.10"),),
            ("USD", "basic", "api"): (Decimal("0.0000001"),),
        },
    ),
)


def test_saved_entries_load_back_exactly(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "state" / "revenue.json")
    store.save({"payments_gross": ENTRY})
    assert store.load() == {"payments_gross": ENTRY}
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["revenue.json"]


def test_the_file_is_versioned_json_with_decimal_strings(tmp_path: Path) -> None:
    path = tmp_path / "revenue.json"
    CheckpointStore(path).save({"payments_gross": ENTRY})
    assert json.loads(path.read_text()) == {
        "version": FORMAT_VERSION,
        "queries": {
            "payments_gross": {
                "fingerprint": ENTRY.fingerprint,
                "database": "7300000000000000001/16384",
                "watermark": 1234,
                "totals": [
                    {"key": ["EUR", "pro", "web"], "values": ["10.10"]},
                    {"key": ["USD", "basic", "api"], "values": ["1E-7"]},
                ],
            }
        },
    }


PARTIAL = Partial(
    fingerprint=ENTRY.fingerprint,
    database=ENTRY.database,
    totals=Totals(watermark=900, values={("EUR", "pro", "web"): (Decimal("2.50"),)}),
    target=5000,
    start=700,
)


def test_a_partial_fold_loads_back_beside_the_complete_entries(tmp_path: Path) -> None:
    path = tmp_path / "revenue.json"
    writer = CheckpointStore(path)
    writer.save({"payments_gross": ENTRY})
    writer.save_partial("refunds", PARTIAL)  # the backfill's write keeps the refresher's
    reader = CheckpointStore(path)
    assert reader.load() == {"payments_gross": ENTRY}
    assert reader.partials() == {"refunds": PARTIAL}
    # The partial part is a key of its own, which exporters before it never read.
    document = json.loads(path.read_text())
    assert document["version"] == 1
    assert sorted(document["backfills"]["refunds"]) == [
        "database",
        "fingerprint",
        "start",
        "target",
        "totals",
        "watermark",
    ]


def test_complete_totals_supersede_the_partial_fold_of_the_same_query(tmp_path: Path) -> None:
    path = tmp_path / "revenue.json"
    store = CheckpointStore(path)
    store.save_partial("payments_gross", PARTIAL)
    store.save_partial("refunds", PARTIAL)
    store.save({"payments_gross": ENTRY})
    reader = CheckpointStore(path)
    assert reader.load() == {"payments_gross": ENTRY}
    assert reader.partials() == {"refunds": PARTIAL}
    store.save({"payments_gross": ENTRY, "refunds": ENTRY})
    assert "backfills" not in json.loads(path.read_text())


def test_a_checkpoint_written_before_partial_folds_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "revenue.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "queries": {
                    "payments_gross": {
                        "fingerprint": ENTRY.fingerprint,
                        "database": ENTRY.database,
                        "watermark": 1234,
                        "totals": [
                            {"key": ["EUR", "pro", "web"], "values": ["10.10"]},
                            {"key": ["USD", "basic", "api"], "values": ["1E-7"]},
                        ],
                    }
                },
            }
        )
    )
    store = CheckpointStore(path)
    assert store.load() == {"payments_gross": ENTRY}
    assert store.partials() == {}


def test_without_a_path_nothing_is_read_or_written(tmp_path: Path) -> None:
    store = CheckpointStore(None)
    store.save({"payments_gross": ENTRY})
    assert store.load() == {}
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_is_an_empty_checkpoint(tmp_path: Path) -> None:
    assert CheckpointStore(tmp_path / "absent.json").load() == {}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{not json", "Expecting property name enclosed in double quotes"),
        ('{"version": 99, "queries": {}}', "unknown checkpoint version 99"),
        ('{"version": 1}', "'queries'"),
        (
            '{"version": 1, "queries": {"q": {"fingerprint": "f", "database": "d", '
            '"watermark": "12", "totals": []}}}',
            "watermark must be an integer",
        ),
        (
            '{"version": 1, "queries": {"q": {"fingerprint": "f", "database": "d", '
            '"watermark": 12, "totals": [{"key": ["a"], "values": ["x"]}]}}}',
            "[<class 'decimal.ConversionSyntax'>]",
        ),
        (
            '{"version": 1, "queries": {}, "backfills": {"q": {"fingerprint": "f", '
            '"database": "d", "watermark": 12, "totals": [], "start": null}}}',
            "'target'",
        ),
    ],
)
def test_an_unreadable_checkpoint_is_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, error: str
) -> None:
    path = tmp_path / "revenue.json"
    path.write_text(text)
    with caplog.at_level(logging.WARNING, logger="finance_exporter.checkpoint"):
        assert CheckpointStore(path).load() == {}
    [record] = caplog.records
    assert record.getMessage() == "checkpoint ignored"
    assert record.__dict__["file.path"] == str(path)
    assert str(record.__dict__["error.message"]).startswith(error)


def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "revenue.json"
    store = CheckpointStore(path)
    store.save({"payments_gross": ENTRY})
    before = path.read_text()
    # A label that JSON cannot encode fails the write halfway through the temporary file.
    unencodable: tuple[str, ...] = (object(),)  # type: ignore[assignment]
    broken = replace(ENTRY, totals=Totals(watermark=1, values={unencodable: (Decimal(1),)}))
    with pytest.raises(TypeError):
        store.save({"payments_gross": broken})
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["revenue.json"]


def test_the_fingerprint_changes_with_the_sql_and_the_labels() -> None:
    same = fingerprint(replace(PAYMENTS_GROSS, origin="elsewhere", timeout_seconds=1.0))
    assert same == fingerprint(PAYMENTS_GROSS)
    assert fingerprint(replace(PAYMENTS_GROSS, sql=PAYMENTS_GROSS.sql + " ")) != same
    metric = replace(PAYMENTS_GROSS.metric, labels=("currency", "plan"))
    assert fingerprint(replace(PAYMENTS_GROSS, metric=metric)) != same


def _user(conn: psycopg.Connection[tuple[object, ...]], tier: str) -> int:
    row = conn.execute(
        "INSERT INTO users (email, tier) VALUES (gen_random_uuid()::text, %s) RETURNING id", (tier,)
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _payment(conn: psycopg.Connection[tuple[object, ...]], user: int, amount: str) -> None:
    conn.execute(
        "INSERT INTO payments (user_id, amount, currency, plan, method, source, status) "
        "VALUES (%s, %s, 'EUR', 'pro', 'card', 'web', 'succeeded')",
        (user, amount),
    )


def test_restart_resumes_from_checkpoint_instead_of_rescanning(
    database: Database,
    redis_db: RedisDb,
    start_exporter: StartExporter,
    write_config: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    config = write_config("min_interval_seconds: 0.001\n")
    checkpoints = tmp_path / "checkpoints"
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        _payment(conn, _user(conn, "pro"), "10.00")
    first = start_exporter(
        "revenue",
        database.exporter_url,
        redis_db.exporter_url,
        config_file=config,
        checkpoint_dir=checkpoints,
    )
    assert by_label(scrape(first), "finance_payments_gross_amount_total", "currency") == {
        ("EUR",): 10.0
    }
    first.server.shutdown()
    first.close()
    # Mark the saved total: a restart that resumes serves the mark, a rescan would erase it.
    path = checkpoints / "revenue.json"
    document = json.loads(path.read_text())
    (row,) = document["queries"]["payments_gross"]["totals"]
    row["values"] = ["1010.00"]
    path.write_text(json.dumps(document))
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        _payment(conn, _user(conn, "pro"), "5.00")
    second = start_exporter(
        "revenue",
        database.exporter_url,
        redis_db.exporter_url,
        config_file=config,
        checkpoint_dir=checkpoints,
    )
    assert by_label(scrape(second), "finance_payments_gross_amount_total", "currency") == {
        ("EUR",): 1015.0
    }
