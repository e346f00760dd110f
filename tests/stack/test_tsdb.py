"""The Prometheus snapshot made from outside: on a folder shaped like a TSDB, blocks are
hard-linked (the same inodes), the WAL and head chunks copied, the lock, the query log and
half-written directories left out; on the pinned Prometheus frozen with SIGSTOP (what `docker
compose pause` does), a second Prometheus opened on the snapshot holds the same series and
samples as the live one over the backed-up range."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import pytest

from finance_stack import captures, tsdb
from support.backup_engine import prometheus_service
from support.scale import pinned_tool

BLOCKS = ("01JZ8Y8X1Q6ZJ6V4M3QW0S9D2A", "01JZ9C2R7M0B1K5N8P3T6V4W2X")


def tsdb_tree(root: Path) -> None:
    for block in BLOCKS:
        (root / block / "chunks").mkdir(parents=True)
        (root / block / "chunks" / "000001").write_bytes(b"chunks of " + block.encode())
        (root / block / "index").write_bytes(b"index")
        (root / block / "meta.json").write_text('{"version": 1}')
        (root / block / "tombstones").write_bytes(b"\x00")
    (root / "wal" / "checkpoint.00000003").mkdir(parents=True)
    (root / "wal" / "checkpoint.00000003" / "00000000").write_bytes(b"checkpoint")
    (root / "wal" / "checkpoint.00000004.tmp").mkdir()
    (root / "wal" / "00000004").write_bytes(b"wal segment 4")
    (root / "wal" / "00000005").write_bytes(b"wal segment 5")
    (root / "chunks_head").mkdir()
    (root / "chunks_head" / "000007").write_bytes(b"head chunk")
    (root / "lock").write_bytes(b"")
    (root / "queries.active").write_bytes(b"\x00" * 100)
    (root / "01JZA000000000000000000000.tmp-for-creation").mkdir()
    (root / "01JZA000000000000000000000.tmp-for-creation" / "index").write_bytes(b"half")


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_blocks_are_hard_linked_and_the_wal_copied(tmp_path: Path) -> None:
    tsdb_tree(tmp_path)
    report = tsdb.snapshot(tmp_path, "ai-finance-backup-1")
    snapshot = tmp_path / "snapshots" / "ai-finance-backup-1"
    assert report.path == "snapshots/ai-finance-backup-1"
    assert (report.blocks, report.linked_files, report.copied_files) == (2, 8, 4)
    assert files(snapshot) == {
        *(
            f"{block}/{name}"
            for block in BLOCKS
            for name in ("chunks/000001", "index", "meta.json", "tombstones")
        ),
        "wal/checkpoint.00000003/00000000",
        "wal/00000004",
        "wal/00000005",
        "chunks_head/000007",
    }
    for block in BLOCKS:
        for name in ("chunks/000001", "index", "meta.json"):
            assert (snapshot / block / name).stat().st_ino == (
                tmp_path / block / name
            ).stat().st_ino
    for name in ("wal/00000005", "chunks_head/000007"):
        assert (snapshot / name).stat().st_ino != (tmp_path / name).stat().st_ino
        assert (snapshot / name).read_bytes() == (tmp_path / name).read_bytes()
    # A WAL segment appended to after the snapshot leaves the copy as it was.
    with (tmp_path / "wal" / "00000005").open("ab") as segment:
        segment.write(b" and more")
    assert (snapshot / "wal" / "00000005").read_bytes() == b"wal segment 5"


def test_a_failed_snapshot_leaves_nothing_and_a_stale_one_is_removed(tmp_path: Path) -> None:
    tsdb_tree(tmp_path)
    (tmp_path / "snapshots" / "ai-finance-backup-old").mkdir(parents=True)
    assert tsdb.remove_stale(tmp_path) == ["ai-finance-backup-old"]
    os.chmod(tmp_path / "chunks_head" / "000007", 0o000)
    if os.geteuid() == 0:
        # root reads anything: make the copy fail another way, a name already taken.
        (tmp_path / "snapshots" / "taken").mkdir()
        with pytest.raises(FileExistsError):
            tsdb.snapshot(tmp_path, "taken")
        assert list((tmp_path / "snapshots" / "taken").iterdir()) == []
        return
    with pytest.raises(PermissionError):
        tsdb.snapshot(tmp_path, "ai-finance-backup-2")
    assert not (tmp_path / "snapshots" / "ai-finance-backup-2").exists()


def test_a_snapshot_of_a_frozen_prometheus_holds_every_committed_sample(tmp_path: Path) -> None:
    binary = pinned_tool("prometheus")
    (tmp_path / "live").mkdir()
    live = prometheus_service(binary, tmp_path / "live")
    live.start()
    try:
        # poll every 0.5s, at most 30s: until its samples reach back 10s
        deadline = time.monotonic() + 30
        lowest = captures.lowest_timestamp(live.url)
        while (lowest is None or time.time() - lowest < 10) and time.monotonic() < deadline:
            time.sleep(0.5)
            lowest = captures.lowest_timestamp(live.url)
        assert lowest is not None
        assert live.process is not None
        frozen_at = time.time()
        os.kill(live.process.pid, signal.SIGSTOP)
        try:
            report = tsdb.snapshot(live.data, "ai-finance-backup-t")
        finally:
            os.kill(live.process.pid, signal.SIGCONT)
        # Scrapes time out after 1s: every sample 3s older than the freeze was committed.
        end = math.floor(frozen_at) - 3
        before = captures.prometheus_counts(live.url, lowest - 1, end)
    finally:
        live.stop()
    assert report.copied_files >= 1 and before.samples > before.series > 100
    (tmp_path / "copy").mkdir()
    copy = prometheus_service(binary, tmp_path / "copy")
    copy.data = live.data / report.path
    copy.start()
    try:
        after = captures.prometheus_counts(copy.url, lowest - 1, end)
    finally:
        copy.stop()
    assert after == before
