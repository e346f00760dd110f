"""Scrape targets of the optional profiles: Prometheus reads them from targets/<job>.json
(file_sd), which `start` writes from the `ai-finance.scrape.*` labels of the services the chosen
profiles run, so a service left out is not scraped and TargetDown does not fire for it."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from finance_demo.platform.app import ports
from finance_stack.compose import Project, read_project
from finance_stack.envfile import Settings
from finance_stack.targets import SCRAPE_JOB, SCRAPE_SERVICES, scrape_targets, write_targets
from support.repo import ROOT, copy_repo

PROMETHEUS_YML = ROOT / "prometheus" / "prometheus.yml"


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def with_profiles(*profiles: str) -> Project:
    """The project as the compose reader renders it for these profiles (real docker compose)."""
    return read_project(ROOT, ",".join(profiles), Settings(ROOT, environ=_clean_environ()))


def _clean_environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DEMO_"))}


def file_sd_jobs() -> dict[str, list[str]]:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    return {
        job["job_name"]: [f for sd in job["file_sd_configs"] for f in sd["files"]]
        for job in config["scrape_configs"]
        if "file_sd_configs" in job
    }


def test_every_file_sd_job_has_labelled_services_and_back() -> None:
    labelled = {
        service["labels"][SCRAPE_JOB]
        for service in compose_services().values()
        if SCRAPE_JOB in (service.get("labels") or {})
    }
    jobs = file_sd_jobs()
    # Each job reads one targets file, that of a labelled job; a service that serves several
    # scrape jobs (the logs-exporter: one per json_exporter module) has one file they share.
    assert all(len(files) == 1 for files in jobs.values()), jobs
    read = {files[0] for files in jobs.values()}
    assert read == {f"targets/{job}.json" for job in labelled}
    sharing = {job for job, files in jobs.items() if files != [f"targets/{job}.json"]}
    assert sharing == {"logstash", "logs-ingestion", "logs-failed-logins"}
    # Only services of optional profiles: the core ones are always scraped (static_configs).
    for name, service in compose_services().items():
        if SCRAPE_JOB in (service.get("labels") or {}):
            assert service.get("profiles"), name


def test_demo_profile_writes_only_its_jobs_and_removes_stale_ones(tmp_path: Path) -> None:
    directory = tmp_path / "targets"
    directory.mkdir()
    (directory / "cadvisor.json").write_text('[{"targets": ["cadvisor:8080"]}]\n')
    lines = write_targets(with_profiles("demo"), directory)
    assert sorted(p.name for p in directory.iterdir()) == [
        "platform.json",
        "postgres.json",
        "redis.json",
    ]
    assert lines == [
        "platform " + " ".join(f"demo-platform:{port}" for port in ports().values()),
        "postgres postgres-exporter:9187",
        "redis redis-exporter:9121",
    ]
    assert json.loads((directory / "postgres.json").read_text()) == [
        {
            "targets": ["postgres-exporter:9187"],
            "labels": {"service": "postgres-exporter", "datastore": "demo-postgres"},
        }
    ]
    # Each of the demo platform's ports is its own service: the label alerts and pages match on.
    assert json.loads((directory / "platform.json").read_text()) == [
        {"targets": [f"demo-platform:{port}"], "labels": {"service": name}}
        for name, port in ports().items()
    ]
    assert (directory / "redis.json").stat().st_mode & 0o777 == 0o644
    # Everything on: every optional job; nothing on: none left.
    write_targets(with_profiles("demo", "full"), directory)
    read = {Path(files[0]).stem for files in file_sd_jobs().values()}
    assert sorted(p.stem for p in directory.glob("*.json")) == sorted(read)
    write_targets(with_profiles(), directory)
    assert list(directory.glob("*.json")) == []


def test_your_datastores_join_the_postgres_and_redis_jobs_with_their_own_label(
    tmp_path: Path,
) -> None:
    """app-postgres / app-redis (added by settings when DATABASE_URL / REDIS_URL are set) share
    the jobs of the demo's exporters, told apart by datastore."""
    directory = tmp_path / "targets"
    lines = write_targets(with_profiles("app-postgres", "app-redis"), directory)
    assert lines == ["postgres app-postgres-exporter:9187", "redis app-redis-exporter:9121"]
    assert json.loads((directory / "postgres.json").read_text()) == [
        {
            "targets": ["app-postgres-exporter:9187"],
            "labels": {"service": "app-postgres-exporter", "datastore": "app-postgres"},
        }
    ]
    assert json.loads((directory / "redis.json").read_text()) == [
        {
            "targets": ["app-redis-exporter:9121"],
            "labels": {"service": "app-redis-exporter", "datastore": "app-redis"},
        }
    ]
    write_targets(with_profiles("demo", "app-redis"), directory)
    assert json.loads((directory / "redis.json").read_text()) == [
        {
            "targets": ["app-redis-exporter:9121"],
            "labels": {"service": "app-redis-exporter", "datastore": "app-redis"},
        },
        {
            "targets": ["redis-exporter:9121"],
            "labels": {"service": "redis-exporter", "datastore": "demo-redis"},
        },
    ]
    assert json.loads((directory / "postgres.json").read_text()) == [
        {
            "targets": ["postgres-exporter:9187"],
            "labels": {"service": "postgres-exporter", "datastore": "demo-postgres"},
        }
    ]


def check_config(root: Path) -> subprocess.CompletedProcess[str]:
    """promtool check config on the copy's prometheus.yml."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: tests/run.sh builds it (pinned-go.sh)"
    return subprocess.run(
        [promtool, "check", "config", str(root / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_promtool_accepts_the_written_targets(tmp_path: Path) -> None:
    """promtool reads file_sd files that exist: the written ones are valid target groups."""
    root = copy_repo(tmp_path / "repo")
    write_targets(with_profiles("demo", "full"), root / "prometheus" / "targets")
    result = check_config(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "does not exist" not in result.stdout + result.stderr
    # A broken file is reported, so the check above is a real one.
    (root / "prometheus" / "targets" / "redis.json").write_text('[{"targets": "redis"}]\n')
    broken = check_config(root)
    assert broken.returncode != 0, broken.stdout + broken.stderr


def test_the_platform_services_are_the_inventorys_in_port_order() -> None:
    from monitoring.inventory import load

    labels = compose_services()["demo-platform"]["labels"]
    assert labels[SCRAPE_SERVICES].split(",") == list(ports())
    assert list(ports()) == [s.name for s in load().services]


def test_a_services_label_that_does_not_match_the_ports_is_refused() -> None:
    project = with_profiles("demo")
    platform = project.services["demo-platform"]
    broken = dataclasses.replace(
        platform, labels={**platform.labels, SCRAPE_SERVICES: "api-gateway,payment"}
    )
    services = {**project.services, "demo-platform": broken}
    with pytest.raises(ValueError, match="names 2 services for 5 ports"):
        scrape_targets(dataclasses.replace(project, services=services))
