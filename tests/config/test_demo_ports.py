"""The demo platform's services and ports, typed once. monitoring/inventory.yml owns the services;
the demo owns where they listen (finance_demo.platform.app: SERVICES in port order from
DEFAULT_BASE_PORT), because the ports are the demo's, not the platform's the inventory describes,
and the demo's image cannot read monitoring/. Everything that repeats them is checked here:
the demo-platform service in docker-compose.yml (scrape label, --base-port, healthcheck, the
demo-load target, the comments that name a service and its port) and docs/instrumentation.md.
README.md is read too, wherever it names a service beside its port."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from finance_demo.platform.app import DEFAULT_BASE_PORT, SERVICES, PlatformSettings, ports
from finance_stack.targets import SCRAPE_PORTS
from monitoring.inventory import load
from support.repo import ROOT

COMPOSE = ROOT / "docker-compose.yml"
INSTRUMENTATION = ROOT / "docs" / "instrumentation.md"
# Prose and comments that may name a service beside its port ("payment 8082").
NAMED_PORTS = [COMPOSE, INSTRUMENTATION, ROOT / "README.md"]
HEALTH_RANGE = re.compile(r"range\((\d+), (\d+)\)")
DOC_ROW = re.compile(r"^\| `([a-z-]+)` \| `demo-platform:(\d+)` \|", re.MULTILINE)
HOST_PORT = re.compile(r"demo-platform:(\d+)")


def demo_ports() -> dict[str, int]:
    """Service → port, as the platform listens by default (and as PlatformSettings says)."""
    settings = PlatformSettings(database_url="", redis_url="")
    found = ports()
    assert found == {name: settings.port(name) for name in SERVICES}
    return found


def named_ports(text: str) -> list[tuple[str, int]]:
    """Every "service 8082" in `text`, a comment wrapped across lines included."""
    joined = re.sub(r"\n[ \t]*#?[ \t]*", " ", text)
    names = "|".join(sorted(map(re.escape, SERVICES), key=len, reverse=True))
    return [(n, int(p)) for n, p in re.findall(rf"\b({names}),? (\d{{4,5}})\b", joined)]


def compose_problems(compose: str, ports: dict[str, int]) -> list[str]:
    """Where the demo-platform and demo-load services disagree with `ports`."""
    services: dict[str, Any] = yaml.safe_load(compose)["services"]
    platform, load_ = services["demo-platform"], services["demo-load"]
    in_order = ",".join(str(ports[name]) for name in SERVICES)
    problems: list[str] = []
    if (label := platform["labels"].get(SCRAPE_PORTS)) != in_order:
        problems.append(f"demo-platform: {SCRAPE_PORTS} is {label!r}, the ports are {in_order!r}")
    command = platform["command"]
    base = command[command.index("--base-port") + 1] if "--base-port" in command else None
    if base != str(DEFAULT_BASE_PORT):
        problems.append(
            f"demo-platform: --base-port is {base!r}, the demo's is {DEFAULT_BASE_PORT}"
        )
    probe = " ".join(map(str, platform["healthcheck"]["test"]))
    probed = [set(range(int(a), int(b))) for a, b in HEALTH_RANGE.findall(probe)]
    if probed != [set(ports.values())]:
        problems.append(
            f"demo-platform: the healthcheck probes {probed}, not {sorted(ports.values())}"
        )
    gateway = f"http://demo-platform:{ports['api-gateway']}"
    target = load_["command"][load_["command"].index("--target") + 1]
    if target != gateway:
        problems.append(f"demo-load: --target is {target!r}, the gateway is {gateway!r}")
    return problems


def text_problems(name: str, text: str, ports: dict[str, int]) -> list[str]:
    """A service named beside another port, or a demo-platform:PORT no service listens on."""
    problems = [
        f"{name}: says {service} {port}, it listens on {ports[service]}"
        for service, port in named_ports(text)
        if ports[service] != port
    ]
    problems += [
        f"{name}: demo-platform:{port} is no service's port"
        for port in sorted({int(p) for p in HOST_PORT.findall(text)} - set(ports.values()))
    ]
    return problems


def doc_problems(doc: str, ports: dict[str, int]) -> list[str]:
    """The service table of docs/instrumentation.md: every service once, at its port."""
    rows = {service: int(port) for service, port in DOC_ROW.findall(doc)}
    return [] if rows == ports else [f"docs/instrumentation.md: the table says {rows}, not {ports}"]


def service_problems(demo: tuple[str, ...], inventory: list[str]) -> list[str]:
    """The demo's services against the inventory's, both ways."""
    return [
        f"{n}: in the demo, not in monitoring/inventory.yml"
        for n in sorted(set(demo) - set(inventory))
    ] + [
        f"{n}: in monitoring/inventory.yml, not in the demo"
        for n in sorted(set(inventory) - set(demo))
    ]


def inventory_services() -> list[str]:
    return [service.name for service in load().services]


def test_the_demo_serves_the_inventory_services() -> None:
    assert service_problems(SERVICES, inventory_services()) == []


def test_compose_matches_the_demo_ports() -> None:
    assert compose_problems(COMPOSE.read_text(), demo_ports()) == []


def test_docs_and_comments_match_the_demo_ports() -> None:
    ports = demo_ports()
    problems = doc_problems(INSTRUMENTATION.read_text(), ports)
    for path in NAMED_PORTS:
        problems += text_problems(str(path.relative_to(ROOT)), path.read_text(), ports)
    assert problems == []


def test_the_comment_in_compose_names_every_service_with_its_port() -> None:
    assert dict(named_ports(COMPOSE.read_text())) == demo_ports()


def planted(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            '"8081,8082,8083,8084,8085"',
            '"8081,8082,8083,8084"',
            "demo-platform: ai-finance.scrape.ports is '8081,8082,8083,8084', the ports are"
            " '8081,8082,8083,8084,8085'",
        ),
        (
            '--base-port, "8081"',
            '--base-port, "9081"',
            "demo-platform: --base-port is '9081', the demo's is 8081",
        ),
        (
            "range(8081, 8086)",
            "range(8081, 8085)",
            "demo-platform: the healthcheck probes [{8081, 8082, 8083, 8084}], not"
            " [8081, 8082, 8083, 8084, 8085]",
        ),
        (
            '"http://demo-platform:8081"',
            '"http://demo-platform:8082"',
            "demo-load: --target is 'http://demo-platform:8082', the gateway is"
            " 'http://demo-platform:8081'",
        ),
    ],
    ids=["scrape-label", "base-port", "healthcheck", "load-target"],
)
def test_a_planted_compose_mismatch_is_reported(old: str, new: str, problem: str) -> None:
    assert compose_problems(planted(COMPOSE, old, new), demo_ports()) == [problem]


def test_a_planted_comment_mismatch_is_reported() -> None:
    text = planted(COMPOSE, "trading 8083", "trading 8093")
    assert text_problems("docker-compose.yml", text, demo_ports()) == [
        "docker-compose.yml: says trading 8093, it listens on 8083"
    ]


def test_a_planted_wrapped_comment_mismatch_is_reported() -> None:
    text = planted(COMPOSE, "payment\n  # 8082", "payment\n  # 8092")
    assert text_problems("docker-compose.yml", text, demo_ports()) == [
        "docker-compose.yml: says payment 8092, it listens on 8082"
    ]


def test_a_planted_doc_mismatch_is_reported() -> None:
    text = planted(INSTRUMENTATION, "`demo-platform:8084`", "`demo-platform:8086`")
    ports = demo_ports()
    assert doc_problems(text, ports) != []
    assert text_problems("docs/instrumentation.md", text, ports) == [
        "docs/instrumentation.md: demo-platform:8086 is no service's port"
    ]


def test_a_planted_service_mismatch_is_reported() -> None:
    inventory = [*inventory_services(), "ledger"]
    assert service_problems(SERVICES[1:], inventory) == [
        "api-gateway: in monitoring/inventory.yml, not in the demo",
        "ledger: in monitoring/inventory.yml, not in the demo",
    ]
    assert service_problems((*SERVICES, "ledger"), inventory_services()) == [
        "ledger: in the demo, not in monitoring/inventory.yml"
    ]
