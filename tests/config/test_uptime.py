"""uptime-kuma/monitors.yml against docker-compose.yml as Docker Compose renders it (parsed here
on its own, not by the generator): every service with an endpoint has a monitor and every
datastore a port check, each at its compose service name and a port the compose file gives
that service; names are unique, timings sane, fields Kuma 1.23's; and the committed file is
the generator's output. The hand-written source (uptime-kuma/extra-monitors.yml) is validated."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from uptime_kuma_api import MonitorType, UptimeKumaApi

from monitoring import inventory, uptime
from monitoring.uptime_extra import UptimeError, extra_monitors
from support.repo import ROOT

# Long-running services with no monitor, and why.
WITHOUT_MONITOR = {
    "uptime-kuma": "the checker: its own outage is TargetDown{job='uptime-kuma'}",
    "filebeat": "its only HTTP endpoint listens on the container's loopback (filebeat.yml)",
    "demo-load": "a load generator: it serves nothing",
}
DATASTORE_IMAGES = ("postgres:", "redis:")


COMPOSE_CONFIG = (
    *("docker", "compose", "--project-directory", str(ROOT)),
    *("--profile", "*", "config", "--format", "json"),
)


def rendered() -> dict[str, Any]:
    result = subprocess.run(COMPOSE_CONFIG, capture_output=True, text=True, check=True, timeout=60)
    config: dict[str, Any] = json.loads(result.stdout)
    return config


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = rendered()["services"]
    return found


@pytest.fixture(scope="module")
def monitors() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = yaml.safe_load((ROOT / uptime.MONITORS).read_text())["monitors"]
    return found


def long_running(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services.items() if s.get("restart") == "unless-stopped"}


def text_of(service: dict[str, Any]) -> str:
    """Everything a service says about where it listens: labels, healthcheck, command,
    environment, ports."""
    return json.dumps(
        [
            service.get("labels"),
            service.get("healthcheck"),
            service.get("command"),
            service.get("environment"),
            service.get("ports"),
        ]
    )


def datastores(services: dict[str, dict[str, Any]]) -> set[str]:
    return {n for n, s in services.items() if str(s["image"]).startswith(DATASTORE_IMAGES)}


def test_the_committed_file_is_the_generators_output() -> None:
    generated = uptime.render(ROOT, inventory.load())
    assert list(generated) == [uptime.MONITORS]
    committed = (ROOT / uptime.MONITORS).read_text()
    assert committed == generated[uptime.MONITORS], "run: python -m monitoring generate"


def test_every_service_with_an_endpoint_has_a_monitor(
    services: dict[str, dict[str, Any]], monitors: list[dict[str, Any]]
) -> None:
    checked = {m["service"] for m in monitors}
    endpoint = {
        name
        for name, service in long_running(services).items()
        if re.search(
            r"ai-finance\.(health|scrape\.ports)|https?://(127\.0\.0\.1|localhost)",
            text_of(service),
        )
    }
    assert endpoint - set(WITHOUT_MONITOR) <= checked
    assert set(long_running(services)) - checked == set(WITHOUT_MONITOR)


def test_every_datastore_has_a_port_check_where_its_clients_connect(
    services: dict[str, dict[str, Any]], monitors: list[dict[str, Any]]
) -> None:
    stores = datastores(services)
    assert stores == {"demo-postgres", "demo-redis"}
    everything = json.dumps(services)
    for name in stores:
        (check,) = [m for m in monitors if m["service"] == name]
        used = {int(port) for port in re.findall(rf"{name}:(\d+)", everything)}
        assert check["type"] == "port" and check["hostname"] == name
        assert used == {check["port"]}, f"{name}: clients use {used}"


def test_every_url_is_a_compose_service_on_a_port_it_serves(
    services: dict[str, dict[str, Any]], monitors: list[dict[str, Any]]
) -> None:
    for entry in monitors:
        if entry["type"] == "port":
            host, port = entry["hostname"], entry["port"]
        else:
            url = urlsplit(entry["url"])
            assert url.scheme == "http", entry["name"]
            host, port = url.hostname, url.port
        assert host == entry["service"] and host in services, entry["name"]
        assert re.search(rf"\b{port}\b", text_of(services[host])), f"{entry['name']}: {port}"


def test_each_monitor_carries_its_services_profiles(
    services: dict[str, dict[str, Any]], monitors: list[dict[str, Any]]
) -> None:
    for entry in monitors:
        assert entry["profiles"] == services[entry["service"]].get("profiles", []), entry["name"]


def test_names_are_unique(monitors: list[dict[str, Any]]) -> None:
    names = [m["name"] for m in monitors]
    assert len(names) == len(set(names)) and names == sorted(names)


def test_intervals_retries_and_timeouts_are_sane(monitors: list[dict[str, Any]]) -> None:
    for entry in monitors:
        assert 20 <= entry["retryInterval"] <= entry["interval"] <= 300, entry["name"]
        assert 1 <= entry["maxretries"] <= 5, entry["name"]
        # Reported down within 5 minutes of the first failed check.
        assert entry["interval"] + entry["maxretries"] * entry["retryInterval"] <= 300
        if entry["type"] != "port":
            assert 0 < entry["timeout"] < entry["retryInterval"], entry["name"]


def test_no_url_is_https_so_no_certificate_is_checked(monitors: list[dict[str, Any]]) -> None:
    # No service of the stack speaks TLS: an https monitor (extra-monitors.yml) turns it on.
    http = [m for m in monitors if m["type"] != "port"]
    assert http and all(m["url"].startswith("http://") for m in http)
    assert not any(m["expiryNotification"] for m in http)


def test_the_platforms_services_are_keyword_checks_of_their_readiness(
    monitors: list[dict[str, Any]],
) -> None:
    platform = {m["name"]: m for m in monitors if m["service"] == "demo-platform"}
    assert set(platform) == {service.name for service in inventory.load().services}
    gateway = platform["api-gateway"]
    assert (gateway["type"], gateway["url"], gateway["keyword"]) == (
        "keyword",
        "http://demo-platform:8081/readyz",
        '"ready":true',
    )


def test_the_fields_are_kuma_1_23s_as_uptime_kuma_api_takes_them(
    monitors: list[dict[str, Any]],
) -> None:
    parameters = set(inspect.signature(UptimeKumaApi._build_monitor_data).parameters)
    for entry in monitors:
        assert set(entry) - {"service", "profiles"} <= parameters, entry["name"]
        assert MonitorType(entry["type"]) in {
            MonitorType.HTTP,
            MonitorType.KEYWORD,
            MonitorType.PORT,
        }


# ---- the hand-written source --------------------------------------------------------------


def test_a_hand_written_https_monitor_gets_the_timings_and_a_certificate_check(
    tmp_path: Path,
) -> None:
    path = tmp_path / "uptime-kuma" / "extra-monitors.yml"
    path.parent.mkdir()
    path.write_text(
        "monitors:\n  - {name: public-api, type: keyword, url: 'https://api.example.com/h',"
        " keyword: ok, profiles: [demo]}\n"
    )
    assert extra_monitors(path) == [
        {
            "name": "public-api",
            "service": None,
            "profiles": ["demo"],
            "description": "uptime-kuma/extra-monitors.yml (hand-written)",
            "type": "keyword",
            "url": "https://api.example.com/h",
            "keyword": "ok",
            "accepted_statuscodes": ["200-299"],
            "expiryNotification": True,
            "timeout": 10,
            "interval": 60,
            "retryInterval": 20,
            "maxretries": 3,
        }
    ]


def test_every_problem_of_the_hand_written_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "uptime-kuma" / "extra-monitors.yml"
    path.parent.mkdir()
    path.write_text(
        "monitors:\n"
        "  - {name: a, type: http, url: api.example.com, colour: red}\n"
        "  - {name: b, type: port, hostname: db.internal, interval: 5}\n"
        "  - {name: c, type: ping}\n"
    )
    with pytest.raises(UptimeError) as raised:
        extra_monitors(path)
    assert str(raised.value) == (
        "uptime-kuma/extra-monitors.yml: monitor #1: unknown key 'colour'; monitor #1: url must"
        " start with http:// or https://, got 'api.example.com'; monitor #2: port is required"
        " for type port; monitor #2: interval must be 20 to 2073600 seconds; monitor #3: type"
        " must be one of http, keyword, port, got 'ping'"
    )


def test_a_hand_written_monitor_named_like_a_generated_one_is_refused(tmp_path: Path) -> None:
    shutil.copy(ROOT / uptime.COMPOSE, tmp_path / uptime.COMPOSE)
    extra = tmp_path / uptime.EXTRA
    extra.parent.mkdir()
    extra.write_text("monitors:\n  - {name: prometheus, type: port, hostname: x, port: 1}\n")
    with pytest.raises(UptimeError, match="monitor names used twice: prometheus"):
        uptime.monitors(tmp_path, inventory.load())
