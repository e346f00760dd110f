"""pins.drift: which running containers are not at the checkout's pins (a backup refuses then)."""

from __future__ import annotations

from finance_stack.compose import Container, parse_ps
from finance_stack.pins import drift, drift_message

PINS = {"prometheus": "prom/prometheus:v3.5.0", "alertmanager": "prom/alertmanager:v0.28.1"}


def container(service: str, image: str) -> Container:
    return Container(service, service, "running", "healthy", 0, (), image)


def test_a_stack_at_the_checkouts_pins_has_no_drift() -> None:
    running = [container(name, image) for name, image in PINS.items()]
    assert drift(PINS, running) == {}


def test_another_version_running_is_drift_with_both_versions() -> None:
    running = [
        container("prometheus", "prom/prometheus:v3.4.0"),
        container("alertmanager", PINS["alertmanager"]),
    ]
    assert drift(PINS, running) == {
        "prometheus": ("prom/prometheus:v3.4.0", "prom/prometheus:v3.5.0")
    }
    message = drift_message(drift(PINS, running))
    assert "prometheus runs prom/prometheus:v3.4.0, this checkout pins prom/prometheus:v3.5.0" in (
        message
    )
    assert "docs/operations.md, Upgrade" in message


def test_our_built_images_and_image_ids_are_not_drift() -> None:
    running = [
        container("revenue-exporter", "ai-finance/exporters:dev"),  # built: no pin
        container("prometheus", "3f1c2d9e8a7b"),  # the tag moved since: an id, not a version
        container("alertmanager", "sha256:" + "ab" * 32),
    ]
    assert drift(PINS, running) == {}


def test_ps_reads_the_image_each_container_was_created_from() -> None:
    line = '{"ID":"abc","Service":"prometheus","State":"running","Image":"prom/prometheus:v3.5.0"}'
    (found,) = parse_ps(line)
    assert found.image == "prom/prometheus:v3.5.0"
    (without,) = parse_ps('{"ID":"abc","Service":"prometheus","State":"running"}')
    assert without.image == ""
