"""backup and restore end to end on the pinned Prometheus and Alertmanager, as local processes
(tests/support/backup_engine.py: `pause` is SIGSTOP, what the cgroup freezer does to a
container): the archive holds every committed sample and the silences, and after the data is
destroyed, restore brings back the same series, samples and silence ids. The same round trip on
containers is tests/live/test_backup.py."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from finance_stack import archive, backup, captures, restore
from finance_stack.engine import EngineError
from finance_stack.pins import ComposeFacts
from support.alertmanager import config_copy, create_silence
from support.backup_engine import (
    LocalEngine,
    LocalService,
    alertmanager_service,
    project,
    prometheus_service,
)
from support.scale import pinned_tool
from support.servers import serving_alert_sink

PINS = {"prometheus": "prom/prometheus:v3.5.0", "alertmanager": "prom/alertmanager:v0.28.1"}
FACTS = ComposeFacts(pins=PINS, volumes=["alertmanager-data", "demo-redis-data", "prometheus-data"])
# The local Prometheus scrapes every second with a 1s timeout: 3s covers a scrape in flight.
MARGIN_SECONDS = 3


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalEngine]:
    services: dict[str, LocalService] = {}
    with serving_alert_sink() as sink:
        config = config_copy(tmp_path / "am", f"http://127.0.0.1:{sink.server_address[1]}")
        services["prometheus"] = prometheus_service(pinned_tool("prometheus"), tmp_path)
        services["alertmanager"] = alertmanager_service(
            pinned_tool("alertmanager"), config, tmp_path
        )
        try:
            for service in services.values():
                service.start()
            yield LocalEngine(services)
        finally:
            for service in services.values():
                service.stop()


def wait_for_history(url: str) -> None:
    """Until Prometheus holds samples older than the margin, with some to spare (its first
    scrape comes when its scrape manager first applies the targets, seconds after ready)."""
    # poll every 0.5s, at most 30s
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lowest = captures.lowest_timestamp(url)
        if lowest is not None and time.time() - lowest > MARGIN_SECONDS + 5:
            return
        time.sleep(0.5)
    pytest.fail(f"{url}: no samples {MARGIN_SECONDS + 5}s old after 30s")


def take_backup(engine: LocalEngine, tmp_path: Path, lines: list[str]) -> tuple[Path, dict]:  # type: ignore[type-arg]
    return backup.run(
        tmp_path,
        project(engine.services),
        {"prometheus": "running", "alertmanager": "running"},
        engine,
        FACTS,
        "test",
        backup.Options(to=tmp_path / "backups", margin_seconds=MARGIN_SECONDS),
        lines.append,
    )


def test_a_restore_after_the_data_is_destroyed_brings_back_every_series_sample_and_silence(
    local: LocalEngine, tmp_path: Path
) -> None:
    silence = create_silence(local.services["alertmanager"].url, "BackupTest")
    wait_for_history(local.services["prometheus"].url)
    lines: list[str] = []
    path, manifest = take_backup(local, tmp_path, lines)

    assert path.name.startswith("ai-finance-backup-") and path.suffix == ".tar"
    assert path.stat().st_mode & 0o777 == 0o600
    stores = manifest["stores"]
    counts = stores["prometheus"]["counts"]
    assert counts["series"] > 100 and counts["samples"] > counts["series"], (counts, lines)
    assert counts["end"] - counts["start"] >= 4
    assert 0 < stores["prometheus"]["paused_seconds"] < 5
    assert [s["id"] for s in stores["alertmanager"]["silences"]] == [silence]
    assert {f["path"] for f in stores["alertmanager"]["files"]} == {
        "alertmanager/nflog",
        "alertmanager/silences",
    }
    assert stores["grafana"] == {
        "status": "skipped",
        "reason": "grafana is not in the running profiles (local)",
        "service": "grafana",
    }
    assert stores["secrets"]["reason"] == "no ./secrets folder (start writes it)"
    assert manifest["volumes_left_out"] == {
        "demo-redis-data": "the demo's Redis: the demo platform fills it again"
    }
    assert any("prometheus: paused for" in line for line in lines)
    # The snapshot was archived, then removed from the volume.
    assert not (local.services["prometheus"].data / "snapshots").exists()
    assert ("pause", "prometheus") in local.calls and ("unpause", "prometheus") in local.calls

    # docker compose down -v, then start: empty volumes.
    local.stop(["prometheus", "alertmanager"])
    for service in local.services.values():
        shutil.rmtree(service.data)
    local.start(["prometheus", "alertmanager"])
    base = local.services["prometheus"].url
    assert captures.prometheus_counts(base, counts["start"], counts["end"]).samples == 0

    chosen = restore.plan(
        path, PINS, project(local.services), {"prometheus": "running", "alertmanager": "running"}
    )
    checks = restore.run(chosen, project(local.services), local, lambda services: {}, lines.append)
    assert [(c.store, c.ok) for c in checks] == [("prometheus", True), ("alertmanager", True)]
    after = captures.prometheus_counts(base, counts["start"], counts["end"])
    assert (after.series, after.series_sha256, after.samples) == (
        counts["series"],
        counts["series_sha256"],
        counts["samples"],
    )
    silences = captures.alertmanager_silences(local.services["alertmanager"].url)
    assert [s["id"] for s in silences] == [silence]
    assert not (local.services["prometheus"].data / ".ai-finance-restore").exists()


def test_a_pause_the_engine_refuses_is_an_error_that_changes_nothing(
    local: LocalEngine, tmp_path: Path
) -> None:
    local.refuse_pause = True
    data = local.services["prometheus"].data
    before = sorted(p.name for p in data.iterdir())
    with pytest.raises(EngineError) as raised:
        backup.run(
            tmp_path,
            project(local.services),
            {"prometheus": "running"},
            local,
            FACTS,
            "test",
            backup.Options(to=tmp_path / "backups", only=("prometheus",)),
            lambda line: None,
        )
    assert str(raised.value).startswith(
        "could not pause prometheus (docker compose pause failed: the cgroup freezer is not"
        " available); nothing was changed"
    )
    assert [c[0] for c in local.calls] == ["worker", "pause"]
    assert sorted(p.name for p in data.iterdir()) == before
    assert list((tmp_path / "backups").iterdir()) == []


def test_the_archive_verifies_and_a_restore_refuses_other_pins_before_touching_anything(
    local: LocalEngine, tmp_path: Path
) -> None:
    path, _ = take_backup(local, tmp_path, [])
    assert archive.verify(path, PINS)["format_version"] == archive.FORMAT_VERSION
    calls = list(local.calls)
    other = {**PINS, "prometheus": "prom/prometheus:v3.6.0"}
    with pytest.raises(archive.ArchiveError) as raised:
        restore.plan(path, other, project(local.services), {"prometheus": "running"})
    assert str(raised.value) == (
        "archive from another version: prometheus: prom/prometheus:v3.5.0 in the archive,"
        " prom/prometheus:v3.6.0 here; restore with the matching checkout or upgrade after"
        " restoring"
    )
    assert local.calls == calls
