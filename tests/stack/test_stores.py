"""The stores backup knows agree with docker-compose.yml: every volume is a store's or left out
for a stated reason; the uids, intervals and paths the stores assume are the compose file's;
the workers' command lines; what restore refuses before it touches anything."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from finance_stack import pins, restore, stores
from finance_stack.compose import Project, Service
from finance_stack.engine import ComposeEngine
from finance_stack.envfile import Settings
from support.archives import PINS, make_archive
from support.repo import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def clean_settings() -> Settings:
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_IMAGE")}
    return Settings(
        ROOT, environ={k: v for k, v in environ.items() if not k.startswith("COMPOSE_")}
    )


def test_every_compose_volume_is_a_store_or_left_out_with_a_reason() -> None:
    facts = pins.read(ROOT, clean_settings())
    assert "prometheus-data" in facts.volumes and "elasticsearch-snapshots" in facts.volumes
    assert stores.unaccounted(facts.volumes) == []
    assert set(stores.NOT_BACKED_UP) <= set(facts.volumes)


def test_the_pins_are_the_upstream_images_at_their_defaults() -> None:
    facts = pins.read(ROOT, clean_settings())
    assert facts.pins["prometheus"] == "prom/prometheus:v3.5.0"
    assert facts.pins["alertmanager"] == "prom/alertmanager:v0.28.1"
    # Our own images are built from the checkout: the stack's version, not a pin.
    assert not {"revenue-exporter", "alert-sink", "volume-worker"} & set(facts.pins)


def test_each_store_volume_is_mounted_by_its_service() -> None:
    for store in stores.STORES:
        if store.volume is None:
            continue
        mounts = [str(v).split(":")[0] for v in COMPOSE["services"][store.service]["volumes"]]
        assert store.volume in mounts, store.name


def test_alertmanager_writes_its_state_as_often_as_backup_assumes() -> None:
    flag = f"--data.maintenance-interval={stores.ALERTMANAGER_MAINTENANCE_SECONDS}s"
    assert flag in COMPOSE["services"]["alertmanager"]["command"]
    scale = yaml.safe_load((ROOT / "docker-compose.scale.yml").read_text())
    for name in ("alertmanager", "alertmanager-2"):
        assert flag in scale["services"][name]["command"], name


def test_the_snapshot_repository_is_where_elasticsearch_and_its_volume_say() -> None:
    settings = yaml.safe_load((ROOT / "elasticsearch" / "elasticsearch.yml").read_text())
    assert settings["path.repo"] == [stores.ELASTIC_REPOSITORY_PATH]
    volumes = COMPOSE["services"]["elasticsearch"]["volumes"]
    assert f"elasticsearch-snapshots:{stores.ELASTIC_REPOSITORY_PATH}" in volumes
    assert (
        "elasticsearch-snapshots:/snapshots"
        in COMPOSE["services"]["elasticsearch-setup"]["volumes"]
    )


def test_the_workers_are_one_off_jobs_nobody_starts() -> None:
    for name in ("volume-worker", "elastic-worker"):
        service = COMPOSE["services"][name]
        assert service["profiles"] == ["ops"], name
        assert service["cap_drop"] == ["ALL"] and service["read_only"] is True, name
        assert "restart" not in service, name
    assert COMPOSE["services"]["volume-worker"]["network_mode"] == "none"
    assert COMPOSE["services"]["elastic-worker"]["user"] == f"{stores.ELASTIC_UID}:0"


def test_a_worker_runs_as_its_volumes_owner_with_only_that_volume() -> None:
    engine = ComposeEngine(ROOT, clean_settings(), Project("p", "", {}))
    argv = engine.worker(stores.BY_NAME["grafana"], ["export", "/volume"], read_only=True)
    at = argv.index("run")
    assert argv[:at] == [
        "docker", "compose", "--project-directory", str(ROOT),
        "--file", str(ROOT / "docker-compose.yml"), "--profile", "ops",
    ]  # fmt: skip
    assert argv[at:] == [
        "run", "--rm", "--no-deps", "-T", "--quiet-pull",
        "--user", "472:0", "--volume", "p_grafana-data:/volume:ro",
        "volume-worker", "volume-worker", "export", "/volume",
    ]  # fmt: skip
    # The engine's name of project p's volume, as Compose itself names it (`run --volume` takes
    # an engine name: the compose key alone would be a new, empty, global volume).
    config = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), "--project-name", "p",
         "--profile", "*", "config", "--format", "json"],
        capture_output=True, text=True, check=True, timeout=120,
        env={**clean_settings().compose_environ(), "PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert json.loads(config.stdout)["volumes"]["grafana-data"]["name"] == "p_grafana-data"
    secrets = engine.worker(stores.BY_NAME["secrets"], ["stage", "/volume"], False, ("CHOWN",))
    assert secrets[secrets.index("--user") :][:6] == [
        "--user", "0:0", "--volume", f"{ROOT / 'secrets'}:/volume", "--cap-add", "CHOWN",
    ]  # fmt: skip


def project(*names: str) -> Project:
    return Project(
        "t", "demo", {n: Service(n, "i", None, False, restart="unless-stopped") for n in names}
    )


def refusal(path: Path, **kwargs: object) -> str:
    arguments = {
        "project": project("prometheus", "alertmanager"),
        "states": dict.fromkeys(PINS, "running"),
    }
    arguments.update(kwargs)
    with pytest.raises(restore.RestoreError) as raised:
        restore.plan(path, PINS, **arguments)  # type: ignore[arg-type]
    return str(raised.value)


def test_restore_refuses_a_store_whose_service_is_not_running(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    assert refusal(path, states={"prometheus": "running", "alertmanager": "exited"}) == (
        "alertmanager: alertmanager is not running: ./start-monitoring.sh start first (restore"
        " replaces the content of the volumes start created)"
    )
    assert refusal(path, project=project("prometheus")) == (
        "alertmanager: alertmanager is not in the profiles demo: start the stack with a profile"
        " that runs it, then restore"
    )


def test_restore_refuses_unknown_or_skipped_stores(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    assert refusal(path, only=("prometheus", "loki")) == (
        "--only: unknown store loki; known: prometheus, alertmanager, grafana, uptime-kuma,"
        " jaeger, elasticsearch, secrets"
    )
    assert refusal(path, only=("grafana",)) == (
        "grafana is not in the archive (grafana is not running (exited))"
    )


def test_restore_chooses_only_what_was_asked(tmp_path: Path) -> None:
    path = make_archive(tmp_path)
    chosen = restore.plan(
        path,
        PINS,
        project("prometheus", "alertmanager"),
        {"alertmanager": "running"},
        ("alertmanager",),
    )
    assert [s.name for s in chosen.stores] == ["alertmanager"]
