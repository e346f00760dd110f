"""The scale-out override (docker-compose.scale.yml) merged onto docker-compose.yml, as Compose
renders it: the Thanos services and the second Alertmanager keep the stack's defaults (loopback
ports, healthchecks, non-root, pinned images), its commands differ from the base's only where
the override means them to, and every address the generated scale configs name is a service of
the merged project listening on that port."""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from typing import Any

import pytest
import yaml

from monitoring import scale
from support.repo import ROOT

BASE = ROOT / "docker-compose.yml"
OVERRIDE = ROOT / "docker-compose.scale.yml"
ADDED = ("alertmanager-2", "thanos-receive-0", "thanos-receive-1", "thanos-query")
RECEIVERS = ("thanos-receive-0", "thanos-receive-1")
CLUSTER_FLAGS = ["--cluster.listen-address=0.0.0.0:9094", "--cluster.peer=alertmanager-2:9094"]


@cache
def merged() -> dict[str, Any]:
    """`docker compose config` of both files with every profile."""
    argv = ["docker", "compose", "--project-directory", str(ROOT), "--file", str(BASE)]
    argv += ["--file", str(OVERRIDE), "--profile", "*", "config", "--format", "json"]
    result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    project: dict[str, Any] = json.loads(result.stdout)
    return project


def base_services() -> dict[str, Any]:
    argv = ["docker", "compose", "--project-directory", str(ROOT), "--file", str(BASE)]
    argv += ["--profile", "*", "config", "--format", "json"]
    result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    services: dict[str, Any] = json.loads(result.stdout)["services"]
    return services


@pytest.mark.parametrize("name", ADDED)
def test_added_services_keep_the_stacks_defaults(name: str) -> None:
    service = merged()["services"][name]
    assert service["healthcheck"]["test"][0] == "CMD"
    # Not root: Thanos' uid 1001 set explicitly; Alertmanager's image runs as nobody already.
    assert service.get("user", "nobody") not in {"0", "0:0", "root"}
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert "mem_limit" in service
    assert all(port["host_ip"] == "127.0.0.1" for port in service.get("ports", []))
    assert re.fullmatch(r"[\w./-]+:v\d+\.\d+\.\d+", service["image"]), service["image"]


def test_the_first_alertmanager_differs_from_the_base_only_in_its_cluster_flags() -> None:
    base = base_services()["alertmanager"]["command"]
    index = base.index("--cluster.listen-address=")
    expected = [*base[:index], *CLUSTER_FLAGS, *base[index + 1 :]]
    assert merged()["services"]["alertmanager"]["command"] == expected


def test_the_second_alertmanager_is_the_first_with_peer_and_port_swapped() -> None:
    services = merged()["services"]
    first, second = services["alertmanager"], services["alertmanager-2"]
    swapped = [
        arg.replace("--cluster.peer=alertmanager-2:", "--cluster.peer=alertmanager:").replace(
            ":9093/", ":9097/"
        )
        for arg in first["command"]
    ]
    assert second["command"] == swapped
    assert [v["target"] for v in second["volumes"]] == [v["target"] for v in first["volumes"]]
    assert second["image"] == first["image"]


def _flag(command: list[str], name: str) -> list[str]:
    return [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]


def test_the_hashring_the_receivers_and_the_querier_name_the_same_nodes() -> None:
    services = merged()["services"]
    ring = json.loads((ROOT / "thanos" / "hashring.json").read_text())
    endpoints = [endpoint for group in ring for endpoint in group["endpoints"]]
    local = [_flag(services[name]["command"], "receive.local-endpoint")[0] for name in RECEIVERS]
    assert endpoints == local == [f"{name}:10901" for name in RECEIVERS]
    assert _flag(services["thanos-query"]["command"], "endpoint") == endpoints
    labels = [_flag(services[name]["command"], "label") for name in RECEIVERS]
    assert labels == [['receive_replica="0"'], ['receive_replica="1"']]
    replica_labels = _flag(services["thanos-query"]["command"], "query.replica-label")
    assert replica_labels == ["replica", "receive_replica"]


def _addresses() -> list[str]:
    """Every host:port the generated scale configs send to or scrape."""
    config = yaml.safe_load((ROOT / scale.PROMETHEUS_SCALE).read_text())
    found = list(config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"])
    found += [str(w["url"]).split("/")[2] for w in config["remote_write"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for job in ("alertmanager", "thanos"):
        found += [t for block in jobs[job]["static_configs"] for t in block["targets"]]
    sources = yaml.safe_load((ROOT / scale.DATASOURCES_SCALE).read_text())["datasources"]
    found += [str(s["url"]).split("/")[2] for s in sources if s["uid"] == "thanos"]
    return found


def _listens(service: dict[str, Any], port: int) -> bool:
    """The service binds `port`: a wildcard listen flag or healthcheck names it."""
    text = " ".join([*(service.get("command") or []), *service["healthcheck"]["test"]])
    return f"0.0.0.0:{port}" in text or f"127.0.0.1:{port}/" in text


@pytest.mark.parametrize("address", _addresses())
def test_every_address_of_the_scale_configs_is_a_service_listening_there(address: str) -> None:
    host, port = address.rsplit(":", 1)
    services = merged()["services"]
    assert host in services, f"{address}: no service {host} in the merged project"
    assert _listens(services[host], int(port)), f"{host} does not listen on {port}"


def test_prometheus_and_grafana_mount_the_scale_configs_over_the_base_ones() -> None:
    services = merged()["services"]
    mounts = {
        (v["source"], v["target"], v.get("read_only", False))
        for name in ("prometheus", "grafana")
        for v in services[name]["volumes"]
    }
    assert (
        str(ROOT / scale.PROMETHEUS_SCALE),
        "/etc/prometheus/prometheus.yml",
        True,
    ) in mounts
    target = "/etc/grafana/provisioning/datasources/datasources.yml"
    assert (str(ROOT / scale.DATASOURCES_SCALE), target, True) in mounts


def test_the_scale_config_adds_only_remote_write_alertmanagers_and_thanos_targets() -> None:
    base = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    generated = yaml.safe_load((ROOT / scale.PROMETHEUS_SCALE).read_text())
    assert set(generated) - set(base) == {"remote_write"}
    unchanged = [
        j for j in generated["scrape_configs"] if j["job_name"] not in {"alertmanager", "thanos"}
    ]
    assert unchanged == [j for j in base["scrape_configs"] if j["job_name"] != "alertmanager"]
    assert generated["rule_files"] == base["rule_files"]
    assert generated["global"] == base["global"]
