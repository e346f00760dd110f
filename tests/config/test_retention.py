"""Prometheus keeps at least the SLO window: the compose default, and the meta alert's threshold,
follow monitoring/inventory.yml's slo_window."""

from __future__ import annotations

import re

import yaml

from support.repo import ROOT

UNITS = {"h": 3600, "d": 86400, "w": 7 * 86400}


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)([hdw])", duration)
    assert match, duration
    return int(match[1]) * UNITS[match[2]]


def slo_window_seconds() -> int:
    inventory = yaml.safe_load((ROOT / "monitoring" / "inventory.yml").read_text())
    return seconds(inventory["slo_window"])


def test_the_default_retention_covers_the_slo_window_with_margin() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    (default,) = re.findall(
        r"--storage\.tsdb\.retention\.time=\$\{PROMETHEUS_RETENTION:-(\w+)\}", compose
    )
    assert seconds(default) >= 1.25 * slo_window_seconds(), default
    assert re.search(
        r"--storage\.tsdb\.retention\.size=\$\{PROMETHEUS_RETENTION_SIZE:-\d+GB\}", compose
    )


def test_the_meta_alert_fires_below_the_slo_window() -> None:
    rules = yaml.safe_load((ROOT / "prometheus" / "rules" / "meta.rules.yml").read_text())
    (rule,) = [
        r
        for group in rules["groups"]
        for r in group["rules"]
        if r.get("alert") == "PrometheusRetentionShorterThanSLOWindow"
    ]
    thresholds = {int(a) * int(b) for a, b in re.findall(r"< (\d+) \* (\d+)", rule["expr"])}
    assert thresholds == {slo_window_seconds()}
