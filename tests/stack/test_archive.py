"""The backup archive: written manifest first, and refused by restore, with one exact sentence,
when it is truncated, altered, has a member too many or too few, a member that escapes, an
unknown format version or another version's pins; each before anything is touched (a `docker`
that records its calls is first on PATH and never runs)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from finance_stack import archive, restore
from finance_stack.compose import Project, Service
from finance_stack.tarstream import sha256_of
from support.archives import BLOCK, FILES, PINS, WAL, make_archive

PROJECT = Project(
    "t",
    "demo",
    {name: Service(name, "i", None, False, restart="unless-stopped") for name in PINS},
)
RUNNING = dict.fromkeys(PINS, "running")


def rewrite(path: Path, change: Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]) -> None:
    """Rebuild the archive with `change` applied to its members (name order kept)."""
    with tarfile.open(path) as tar:
        members = [
            (m, tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
            for m in tar.getmembers()
        ]
    change(members)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            member.size = len(data) if member.isfile() else 0
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)


def added(name: str, data: bytes = b"x") -> Callable[[list[tuple[tarfile.TarInfo, bytes]]], None]:
    def change(members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        members.append((info, data))

    return change


@pytest.fixture(autouse=True)
def docker_recorder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A `docker` first on PATH that records any call; no test here may make one."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "docker-calls.log"
    script = folder / "docker"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexit 1\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    yield log
    assert not log.exists(), log.read_text()


def refused(path: Path, pins: dict[str, str] = PINS) -> str:
    with pytest.raises(archive.ArchiveError) as raised:
        restore.plan(path, pins, PROJECT, RUNNING)
    return str(raised.value)


def test_a_whole_archive_verifies_and_its_manifest_comes_first(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names[0] == archive.MANIFEST
    assert names[1:] == [
        "prometheus",
        f"prometheus/{BLOCK}",
        f"prometheus/{BLOCK}/chunks",
        "prometheus/wal",
        f"prometheus/{BLOCK}/chunks/000001",
        f"prometheus/{BLOCK}/meta.json",
        WAL,
        "alertmanager",
        "alertmanager/nflog",
        "alertmanager/silences",
    ]
    chosen = restore.plan(path, PINS, PROJECT, RUNNING)
    assert [s.name for s in chosen.stores] == ["prometheus", "alertmanager"]
    assert chosen.manifest["stores"]["prometheus"]["files"][2] == {
        "path": WAL,
        "size": len(FILES[WAL]),
        "sha256": sha256_of(tmp_path / "staging" / WAL),
        "mode": 0o644,
    }


def test_a_gzipped_archive_verifies_too(tmp_path: Path) -> None:
    path = make_archive(tmp_path, gzip=True)
    assert archive.verify(path, PINS)["stores"]["grafana"]["status"] == "skipped"


@pytest.mark.parametrize("gzip", [False, True], ids=["tar", "tar.gz"])
def test_a_truncated_archive_is_refused(tmp_path: Path, gzip: bool) -> None:
    path = make_archive(tmp_path, gzip=gzip)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = refused(path)
    if gzip:
        assert message.startswith(f"truncated or damaged archive: it ends inside {WAL} (")
    else:
        assert (
            message
            == f"truncated or damaged archive: it ends inside {WAL} (unexpected end of data)"
        )


def test_a_truncated_archive_cut_between_members_is_refused_as_missing_them(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    with tarfile.open(path) as tar:
        last = tar.getmember("alertmanager/silences")
    path.write_bytes(path.read_bytes()[: last.offset])
    assert refused(path) == (
        "missing member(s): alertmanager/silences (the archive ends early, or they were removed)"
    )


def test_one_flipped_byte_in_a_member_is_refused(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(b"WAL-RECORD") + 5000
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    assert (
        refused(path) == f"{WAL}: its SHA-256 is not the one in manifest.json: the file was altered"
    )


def test_an_extra_member_is_refused(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    rewrite(path, added("prometheus/wal/00000002"))
    assert refused(path) == "extra member prometheus/wal/00000002: not in manifest.json"


def test_a_missing_member_is_refused(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    rewrite(path, lambda members: members.remove(next(m for m in members if m[0].name == WAL)))
    assert refused(path) == (
        f"missing member(s): {WAL} (the archive ends early, or they were removed)"
    )


@pytest.mark.parametrize("name", ["../../etc/cron.d/evil", "/etc/cron.d/evil", "prometheus/../x"])
def test_a_member_that_escapes_its_folder_is_refused(tmp_path: Path, name: str) -> None:
    path = make_archive(tmp_path)
    rewrite(path, added(name))
    assert refused(path) == f"member {name!r} escapes the archive (absolute or '..')"


def test_an_unknown_format_version_is_refused(tmp_path: Path) -> None:
    path = make_archive(tmp_path, format_version=2)
    assert refused(path) == (
        "unknown format version 2: this checkout reads version 1; restore with the checkout"
        " that wrote the archive"
    )


def test_an_archive_from_other_pins_is_refused_naming_each_difference(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    now = {"prometheus": "prom/prometheus:v3.6.0", "jaeger": "jaegertracing/jaeger:2.13.0"}
    assert refused(path, now) == (
        "archive from another version: alertmanager: prom/alertmanager:v0.28.1 in the archive,"
        " absent here; jaeger: absent in the archive, jaegertracing/jaeger:2.13.0 here;"
        " prometheus: prom/prometheus:v3.5.0 in the archive, prom/prometheus:v3.6.0 here;"
        " restore with the matching checkout or upgrade after restoring"
    )


def test_a_manifest_that_is_not_first_is_refused(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    rewrite(path, lambda members: members.append(members.pop(0)))
    assert refused(path) == "the first member is 'prometheus', not manifest.json: not a backup"


def test_a_file_that_is_no_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.tar"
    path.write_text("not a tar\n" * 100)
    assert refused(path).startswith(f"{path}: not a readable tar archive (")


def test_a_member_of_a_store_the_backup_skipped_is_extra(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    rewrite(path, added("grafana/grafana.db"))
    assert refused(path) == "extra member grafana/grafana.db: not in manifest.json"


def test_the_manifest_records_what_was_skipped_and_why(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    with tarfile.open(path) as tar:
        manifest = json.loads(tar.extractfile(archive.MANIFEST).read())  # type: ignore[union-attr]
    assert manifest["stores"]["grafana"] == {
        "status": "skipped",
        "reason": "grafana is not running (exited)",
    }


def test_a_restore_streams_a_store_checking_each_file_again(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    manifest = archive.verify(path, PINS)
    out = io.BytesIO()
    assert archive.write_store(path, manifest, "alertmanager", out) == 2
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert {m.name: tar.extractfile(m).read() for m in tar} == {  # type: ignore[union-attr]
            "nflog": b"nflog",
            "silences": b"silences",
        }
    # The archive changed after verify(): the stream stops.
    rewrite(path, lambda members: members.__setitem__(-1, (members[-1][0], b"SILENCES")))
    with pytest.raises(archive.ArchiveError) as raised:
        archive.write_store(path, manifest, "alertmanager", io.BytesIO())
    assert str(raised.value) == "alertmanager/silences changed since the archive was verified"
