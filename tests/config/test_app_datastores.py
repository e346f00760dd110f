"""The exporters of your own Postgres and Redis in `docker compose config`: their profiles,
least privilege, and no password anywhere in the rendered project, even with every datastore URL
set (the secrets job reads them itself; the exporters read files)."""

from __future__ import annotations

import json
import os
import subprocess

from support.repo import ROOT

PLANTED = "Zq9plantedZq"
URLS = {
    "DATABASE_URL": f"postgresql://finance_exporter:{PLANTED}1@db.internal:5432/platform",
    "REDIS_URL": f"redis://finance_exporter:{PLANTED}2@cache.internal:6379/0",
    "POSTGRES_EXPORTER_DATABASE_URL": f"postgresql://postgres_exporter:{PLANTED}3@db.internal/p",
    "REDIS_EXPORTER_URL": f"rediss://redis_exporter:{PLANTED}4@cache.internal:6380/0",
    # What start exports (preflight): the address and user, no password.
    "APP_REDIS_EXPORTER_ADDR": "rediss://cache.internal:6380/0",
    "APP_REDIS_EXPORTER_USER": "redis_exporter",
}
APP_EXPORTERS = {"app-postgres-exporter": "app-postgres", "app-redis-exporter": "app-redis"}


def rendered(profiles: str) -> tuple[str, dict[str, dict[str, object]]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        ["docker", "compose", "--project-directory", str(ROOT), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**environ, **URLS, "COMPOSE_PROFILES": profiles},
    )
    services: dict[str, dict[str, object]] = json.loads(result.stdout)["services"]
    return result.stdout, services


def test_each_app_exporter_runs_only_in_its_profile() -> None:
    _, core = rendered("")
    assert not set(APP_EXPORTERS) & set(core)
    for service, profile in APP_EXPORTERS.items():
        _, services = rendered(profile)
        assert service in services
        assert services[service]["profiles"] == [profile]
        assert set(APP_EXPORTERS) & set(services) == {service}


def test_no_password_is_in_the_rendered_project() -> None:
    text, services = rendered("*")
    assert PLANTED not in text
    assert "environment" not in services["secrets-init"]
    assert "/project" in [v["target"] for v in services["secrets-init"]["volumes"]]  # type: ignore[attr-defined,index]
    project = next(v for v in services["secrets-init"]["volumes"] if v["target"] == "/project")  # type: ignore[attr-defined,index]
    assert project["read_only"] is True


def test_the_app_exporters_read_their_connection_from_secret_files() -> None:
    _, services = rendered("app-postgres,app-redis")
    assert services["app-postgres-exporter"]["environment"] == {
        "DATA_SOURCE_URI_FILE": "/run/secrets/app_postgres_exporter_uri",
        "DATA_SOURCE_USER_FILE": "/run/secrets/app_postgres_exporter_user",
        "DATA_SOURCE_PASS_FILE": "/run/secrets/app_postgres_exporter_password",
    }
    assert services["app-redis-exporter"]["environment"] == {
        "REDIS_ADDR": "rediss://cache.internal:6380/0",
        "REDIS_USER": "redis_exporter",
        "REDIS_PASSWORD_FILE": "/run/secrets/app_redis_exporter_passwords",
    }
    for service in APP_EXPORTERS:
        mounted = {s["source"] for s in services[service]["secrets"]}  # type: ignore[attr-defined]
        used = {
            value.removeprefix("/run/secrets/")
            for value in services[service]["environment"].values()  # type: ignore[attr-defined]
            if value.startswith("/run/secrets/")
        }
        assert mounted == used, service


def test_the_app_exporters_are_least_privileged() -> None:
    _, services = rendered("app-postgres,app-redis")
    for name in APP_EXPORTERS:
        service = services[name]
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert service.get("mem_limit"), name
        assert not service.get("ports"), name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["restart"] == "unless-stopped", name


def test_the_app_exporters_are_scraped_with_their_datastore_label() -> None:
    _, services = rendered("app-postgres,app-redis")
    labels = {name: services[name]["labels"] for name in APP_EXPORTERS}
    assert labels == {
        "app-postgres-exporter": {
            "ai-finance.scrape.job": "postgres",
            "ai-finance.scrape.ports": "9187",
            "ai-finance.scrape.labels": "datastore=app-postgres",
        },
        "app-redis-exporter": {
            "ai-finance.health": 'prometheus redis_up{datastore="app-redis"}',
            "ai-finance.scrape.job": "redis",
            "ai-finance.scrape.ports": "9121",
            "ai-finance.scrape.labels": "datastore=app-redis",
        },
    }
