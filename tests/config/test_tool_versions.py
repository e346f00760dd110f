"""The promtool and amtool the rule, route and config tests run are the versions the compose file
pins for Prometheus and Alertmanager (tests/run.sh builds them from the upstream modules), so a
rule or route that behaves differently in the pinned version fails here, not in production."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from support.pins import pinned_version


def reported_version(tool: str) -> str:
    path = shutil.which(tool)
    assert path, f"{tool} not found: tests/run.sh builds it (tests/live/images/pinned-go.sh {tool})"
    result = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    found = re.search(rf"^{tool}, version (\S+)", result.stdout + result.stderr, re.MULTILINE)
    assert found, result.stdout + result.stderr
    return found.group(1)


@pytest.mark.parametrize(
    ("tool", "variable"), [("promtool", "PROMETHEUS_IMAGE"), ("amtool", "ALERTMANAGER_IMAGE")]
)
def test_the_tool_is_the_pinned_version(tool: str, variable: str) -> None:
    assert reported_version(tool) == pinned_version(variable)
