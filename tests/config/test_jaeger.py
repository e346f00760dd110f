"""jaeger/config.yaml offline: the pipeline from OTLP to Badger, the retention, the ports and the
memory bounds, and that docker-compose.yml's jaeger service agrees with it (mount, volume,
ports, scrape label, healthcheck). The keys are Jaeger 2.13.0's (module v1.76.0); the config's
comments name the source files they come from."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.repo import ROOT

CONFIG = ROOT / "jaeger" / "config.yaml"
COMPOSE = ROOT / "docker-compose.yml"
# confmap's environment provider: ${env:NAME} or ${env:NAME:-default}.
ENV_REFERENCE = re.compile(r"\$\{env:(\w+)(?::-([^}]*))?\}")
# Compose's ${NAME:-default}.
COMPOSE_DEFAULT = re.compile(r"^\$\{(\w+):-([^}]*)\}$")
GO_DURATION = re.compile(r"(\d+)(h|m|s)")
GO_UNITS = {"h": timedelta(hours=1), "m": timedelta(minutes=1), "s": timedelta(seconds=1)}
MEMORY = re.compile(r"^(\d+)(b|k|m|g|KiB|MiB|GiB)$")
MEMORY_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
MEMORY_UNITS |= {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return data


@pytest.fixture(scope="module")
def service() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]["jaeger"]
    return data


def resolve(value: str, environ: dict[str, str] | None = None) -> str:
    """`value` as confmap expands it: the variable's value when set, else its default."""
    environ = environ or {}
    return ENV_REFERENCE.sub(lambda m: environ.get(m.group(1), m.group(2) or ""), value)


def compose_default(value: str) -> str:
    match = COMPOSE_DEFAULT.match(value)
    assert match, f"{value!r} is not ${{VAR:-default}}"
    return match.group(2)


def go_duration(text: str) -> timedelta:
    parts = GO_DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a Go duration: {text!r}"
    return sum((int(n) * GO_UNITS[u] for n, u in parts), timedelta())


def memory_bytes(text: str) -> int:
    match = MEMORY.match(text)
    assert match, f"not a memory size: {text!r}"
    return int(match.group(1)) * MEMORY_UNITS[match.group(2)]


def strings(node: object) -> list[str]:
    """Every string value in a parsed YAML document."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def port(endpoint: str) -> int:
    return int(resolve(endpoint).rsplit(":", 1)[1])


def badger(config: dict[str, Any]) -> dict[str, Any]:
    backends = config["extensions"]["jaeger_storage"]["backends"]
    (backend,) = backends.values()
    storage: dict[str, Any] = backend["badger"]
    return storage


def container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(mapping).rsplit(":", 1)[1]) for mapping in service["ports"]}


# ---- the pipeline ----------------------------------------------------------------------------


def test_traces_flow_from_otlp_through_the_memory_limiter_into_storage(
    config: dict[str, Any],
) -> None:
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["jaeger_storage_exporter"],
    }
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}


def test_every_component_the_service_names_is_configured(config: dict[str, Any]) -> None:
    pipeline = config["service"]["pipelines"]["traces"]
    for section in ("receivers", "processors", "exporters"):
        assert set(pipeline[section]) == set(config[section]), section
    assert set(config["service"]["extensions"]) == set(config["extensions"])


def test_the_exporter_and_the_query_use_the_one_storage_backend(config: dict[str, Any]) -> None:
    (name,) = config["extensions"]["jaeger_storage"]["backends"]
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] == name
    assert config["extensions"]["jaeger_query"]["storage"] == {"traces": name}


# ---- storage and retention -------------------------------------------------------------------


def test_badger_persists_on_the_compose_volume(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    storage = badger(config)
    assert storage["ephemeral"] is False
    named = [v for v in service["volumes"] if not str(v).startswith(".")]
    (volume,) = named
    name, target = str(volume).split(":")
    assert name in yaml.safe_load(COMPOSE.read_text())["volumes"]
    directories = storage["directories"]
    assert set(directories) == {"keys", "values"}
    assert directories["keys"] != directories["values"]
    for directory in directories.values():
        assert Path(directory).is_relative_to(target), f"{directory} is not on the volume"


def test_retention_is_seven_days_unless_jaeger_retention_says_otherwise(
    config: dict[str, Any],
) -> None:
    spans = badger(config)["ttl"]["spans"]
    assert go_duration(resolve(spans)) == timedelta(days=7)
    assert go_duration(resolve(spans, {"JAEGER_RETENTION": "72h"})) == timedelta(days=3)


def test_compose_passes_the_retention_with_the_configs_default(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    spans = badger(config)["ttl"]["spans"]
    match = ENV_REFERENCE.fullmatch(spans)
    assert match, spans
    variable, default = match.groups()
    assert compose_default(service["environment"][variable]) == default


def test_every_environment_reference_has_a_default(config: dict[str, Any]) -> None:
    # Jaeger then starts with this config outside Compose too (a test, a local run).
    references = [ref for value in strings(config) for ref in ENV_REFERENCE.findall(value)]
    assert references
    assert [name for name, default in references if not default] == []


# ---- ports and probes ------------------------------------------------------------------------


def test_listeners_bind_every_interface_in_the_container(config: dict[str, Any]) -> None:
    endpoints = [
        config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        config["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        config["extensions"]["jaeger_query"]["http"]["endpoint"],
        config["extensions"]["healthcheckv2"]["http"]["endpoint"],
    ]
    reader = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert {resolve(e).rsplit(":", 1)[0] for e in endpoints} == {"0.0.0.0"}
    assert resolve(reader["prometheus"]["host"]) == "0.0.0.0"


def test_published_ports_are_the_otlp_receivers_and_the_query_ui(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    query = config["extensions"]["jaeger_query"]["http"]["endpoint"]
    assert port(protocols["grpc"]["endpoint"]) == 4317
    assert port(protocols["http"]["endpoint"]) == 4318
    assert port(query) == 16686
    assert container_ports(service) == {4317, 4318, 16686}


def test_prometheus_scrapes_the_port_jaeger_serves_its_metrics_on(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    (reader,) = config["service"]["telemetry"]["metrics"]["readers"]
    assert (
        str(reader["pull"]["exporter"]["prometheus"]["port"])
        == (service["labels"]["ai-finance.scrape.ports"])
    )


def test_the_compose_healthcheck_probes_the_health_extension(
    config: dict[str, Any], service: dict[str, Any]
) -> None:
    health = config["extensions"]["healthcheckv2"]
    assert health["use_v2"] is True
    status = health["http"]["status"]
    assert status["enabled"] is True
    url = f"http://127.0.0.1:{port(health['http']['endpoint'])}{status['path']}"
    assert service["healthcheck"]["test"] == ["CMD", "wget", "-q", "-O", "/dev/null", url]


def test_compose_runs_this_config_mounted_read_only(service: dict[str, Any]) -> None:
    flag, path = service["command"]
    assert flag == "--config"
    assert f"./jaeger/config.yaml:{path}:ro" in service["volumes"]


# ---- memory ----------------------------------------------------------------------------------


def test_memory_limiter_refuses_spans_below_the_container_limit(config: dict[str, Any]) -> None:
    limiter = config["processors"]["memory_limiter"]
    assert go_duration(limiter["check_interval"]) > timedelta()
    # Percentages of the cgroup's limit (the container's mem_limit), the hard one below 100%.
    assert 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"] < 100


def test_go_heap_target_is_under_the_container_memory_limit(service: dict[str, Any]) -> None:
    heap = memory_bytes(compose_default(service["environment"]["GOMEMLIMIT"]))
    limit = memory_bytes(compose_default(service["mem_limit"]))
    assert 0.7 * limit <= heap <= 0.8 * limit, (heap, limit)
