"""The volume worker (`python3 -m finance_stack volume-worker`, what the backup's containers run)
driven through the host's Worker: export as a tar stream, the handshake a refused pause stops,
stage then commit (the volume replaced only by commit), an unsafe stream refused."""

from __future__ import annotations

import io
import os
import sys
import tarfile
from pathlib import Path

import pytest

from finance_stack import tarstream
from finance_stack.volume_worker import READY
from finance_stack.workers import Worker, WorkerError
from support.stack import STACK_SRC

ENV = {**os.environ, "PYTHONPATH": str(STACK_SRC)}


def worker(*args: str) -> Worker:
    return Worker([sys.executable, "-m", "finance_stack", "volume-worker", *args], ENV, "test")


def volume(root: Path) -> Path:
    (root / "plugins").mkdir(parents=True)
    (root / "grafana.db").write_bytes(b"SQLite format 3\x00" + b"\x01" * 5000)
    (root / "plugins" / "README").write_text("plugins\n")
    (root / ".ai-finance-restore").mkdir()
    (root / ".ai-finance-restore" / "left-over").write_text("x")
    return root


def tar_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o640
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_export_streams_the_volume_without_the_restore_staging(tmp_path: Path) -> None:
    root = volume(tmp_path / "volume")
    running = worker("export", str(root))
    received = running.read_stdout(
        lambda out: tarstream.receive(out, tmp_path / "got", modes=False)
    )
    report = running.finish()
    files, dirs = received[0]
    assert report == {"files": 2, "bytes": 5016 + 8, "missing": []}
    assert sorted(e.path for e in files) == ["grafana.db", "plugins/README"]
    assert dirs == [("plugins", 0o755)]
    assert (tmp_path / "got" / "grafana.db").read_bytes() == (root / "grafana.db").read_bytes()


def test_export_of_named_files_reports_the_missing_ones(tmp_path: Path) -> None:
    root = volume(tmp_path / "volume")
    running = worker("export", str(root), "--only", "grafana.db", "--only", "nflog")
    received = running.read_stdout(lambda out: tarstream.receive(out, tmp_path / "got"))
    assert running.finish()["missing"] == ["nflog"]
    assert [e.path for e in received[0][0]] == ["grafana.db"]


def test_a_refused_pause_stops_the_snapshot_before_it_changes_anything(tmp_path: Path) -> None:
    (tmp_path / "wal").mkdir()
    (tmp_path / "wal" / "00000000").write_bytes(b"wal")
    (tmp_path / "snapshots" / "ai-finance-backup-stale").mkdir(parents=True)
    running = worker("snapshot-prometheus", str(tmp_path), "ai-finance-backup-2", "--handshake")
    running.read_stdout(lambda out: out.read())
    assert running.expect(READY, 30) == ""
    running.send("ABORT")
    with pytest.raises(WorkerError) as raised:
        running.finish(30)
    assert "stopped before @@done (exit 3)" in str(raised.value)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == ["ai-finance-backup-stale"]


def test_stage_then_commit_replaces_the_volume_and_only_commit_does(tmp_path: Path) -> None:
    root = volume(tmp_path / "volume")
    staging = worker("stage", str(root))
    stream = tar_of({"grafana.db": b"restored db", "csv/report.csv": b"a,b\n"})
    staging.feed_stdin(lambda stdin: stdin.write(stream))
    staged = staging.finish()["files"]
    assert staged == {
        "csv/report.csv": [4, tarstream.sha256_of(root / ".ai-finance-restore" / "csv/report.csv")],
        "grafana.db": [11, tarstream.sha256_of(root / ".ai-finance-restore" / "grafana.db")],
    }
    # Staged, not yet in place: the running service still sees its own files.
    assert (root / "plugins" / "README").exists()
    assert (root / "grafana.db").read_bytes().startswith(b"SQLite")
    committing = worker("commit", str(root))
    committing.read_stdout(lambda out: out.read())
    assert committing.finish() == {"files": ["csv/report.csv", "grafana.db"]}
    assert sorted(p.name for p in root.iterdir()) == ["csv", "grafana.db"]
    assert (root / "grafana.db").read_bytes() == b"restored db"
    assert (root / "grafana.db").stat().st_mode & 0o777 == 0o640


def test_an_unsafe_stream_is_refused_and_leaves_the_volume_as_it_was(tmp_path: Path) -> None:
    root = volume(tmp_path / "volume")
    before = tarstream.listing(root)
    staging = worker("stage", str(root))
    stream = tar_of({"grafana.db": b"x", "../outside": b"escape"})
    staging.feed_stdin(lambda stdin: stdin.write(stream))
    with pytest.raises(WorkerError) as raised:
        staging.finish()
    assert "stage: unsafe path '../outside': absolute, empty or with '..'" in str(raised.value)
    assert not (tmp_path / "outside").exists()
    assert not (root / ".ai-finance-restore").exists()
    assert tarstream.listing(root) == {k: v for k, v in before.items() if not k.startswith(".")}


def test_discard_removes_what_was_staged(tmp_path: Path) -> None:
    root = volume(tmp_path / "volume")
    discarding = worker("discard", str(root))
    discarding.read_stdout(lambda out: out.read())
    assert discarding.finish() == {"discarded": True}
    assert not (root / ".ai-finance-restore").exists()
    assert (root / "grafana.db").exists()
