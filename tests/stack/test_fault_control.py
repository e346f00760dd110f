"""Turning faults on and off (fault_control.py) on a real in-process demo platform. There is no
Docker engine offline, so `docker` on PATH is a stand-in that records its command line and runs
what `docker compose exec demo-platform ...` would run in the container, here, against the
platform's real /-/faults: the knobs found are the knobs put back."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from finance_demo.platform.app import SERVICES, Platform, PlatformSettings
from finance_demo.platform.faults import Faults
from finance_stack.fault_control import ComposeFaults, FaultControlError
from finance_stack.scenarios import BY_NAME, PLATFORM_CONTAINER, Fault
from support.platform import free_port_range, request

# `docker compose [global flags] exec -T demo-platform finance-demo fault ...` runs the command
# here (the platform's port is the test's); kill and start only answer. Every call is logged.
FAKE_DOCKER = f"""#!{sys.executable}
import json, os, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
command = args[args.index("exec") + 3:] if "exec" in args else []
if command[:2] == ["finance-demo", "fault"]:
    argv = [sys.executable, "-m", "finance_demo.cli", *command[1:]]
    argv += ["--base-port", os.environ["FAKE_BASE_PORT"]]
    sys.exit(subprocess.run(argv).returncode)
sys.exit(int(os.environ.get("FAKE_DOCKER_EXIT", "0")))
"""


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[Platform, int]]:
    # /-/faults touches no datastore: nothing needs to listen at these URLs.
    base_port = free_port_range(len(SERVICES))
    settings = PlatformSettings(
        "postgresql://nobody:x@127.0.0.1:1/none",
        "redis://nobody:x@127.0.0.1:1/0",
        host="127.0.0.1",
        base_port=base_port,
    )
    running = Platform(settings)
    running.start()
    try:
        yield running, base_port
    finally:
        running.stop()


@pytest.fixture
def environ(tmp_path: Path, platform: tuple[Platform, int]) -> dict[str, str]:
    folder = tmp_path / "bin"
    folder.mkdir()
    docker = folder / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    for switch in platform[0].faults.values():
        switch.set(Faults())
    return {
        **os.environ,
        "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}",
        "FAKE_DOCKER_LOG": str(tmp_path / "docker.log"),
        "FAKE_BASE_PORT": str(platform[1]),
    }


def calls(environ: dict[str, str]) -> list[list[str]]:
    lines = Path(environ["FAKE_DOCKER_LOG"]).read_text().splitlines()
    return [json.loads(line)[5:] for line in lines]  # after compose --project-directory --file


def test_a_knob_fault_is_set_beside_the_knobs_found_and_those_are_put_back(
    tmp_path: Path, environ: dict[str, str], platform: tuple[Platform, int]
) -> None:
    running, base_port = platform
    url = f"http://127.0.0.1:{base_port + SERVICES.index('payment')}/-/faults"
    assert request(url, {"added_latency_ms": 40}, method="PUT")[0] == 200
    control = ComposeFaults(tmp_path, environ)
    fault = BY_NAME["payment-provider-down"].fault
    said = control.turn_on(fault)
    assert running.faults["payment"].current == Faults(added_latency_ms=40, provider_failing=True)
    assert said == (
        'payment /-/faults now {"error_ratio": 0.0, "added_latency_ms": 40,'
        ' "provider_failing": true}'
    )
    control.turn_off(fault)
    assert running.faults["payment"].current == Faults(added_latency_ms=40)
    put_on = json.dumps({"error_ratio": 0.0, "added_latency_ms": 40, "provider_failing": True})
    exec_ = ["exec", "-T", PLATFORM_CONTAINER, "finance-demo", "fault", "payment"]
    assert calls(environ) == [
        ["--profile", "*", *exec_],
        ["--profile", "*", *exec_, "--put", put_on],
        [
            "--profile",
            "*",
            *exec_,
            "--put",
            json.dumps({**json.loads(put_on), "provider_failing": False}),
        ],
    ]


def test_a_kill_fault_kills_the_platforms_container_and_starts_it_again(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    control = ComposeFaults(tmp_path, environ)
    fault = BY_NAME["platform-killed"].fault
    assert control.turn_on(fault) == f"{PLATFORM_CONTAINER} killed"
    assert control.turn_off(fault) == f"{PLATFORM_CONTAINER} started"
    assert calls(environ) == [
        ["--profile", "*", "kill", PLATFORM_CONTAINER],
        ["--profile", "*", "start", PLATFORM_CONTAINER],
    ]


def test_a_refused_knob_or_a_failing_docker_is_a_fault_control_error(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    control = ComposeFaults(tmp_path, environ)
    wrong = Fault("trading", {"feed_stalled": True})
    with pytest.raises(FaultControlError, match="trading has no knob 'feed_stalled'"):
        control.turn_on(wrong)
    # The knobs were read before the refusal, so turning off puts them back.
    assert control.turn_off(wrong).startswith("trading /-/faults back to")
    with pytest.raises(FaultControlError, match="docker compose kill failed"):
        ComposeFaults(tmp_path, {**environ, "FAKE_DOCKER_EXIT": "1"}).turn_on(
            BY_NAME["platform-killed"].fault
        )


def test_knobs_never_changed_are_not_touched_when_turning_off(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    control = ComposeFaults(tmp_path, environ)
    assert control.turn_off(BY_NAME["trading-latency"].fault) == (
        "trading's knobs were never changed"
    )
    assert not Path(environ["FAKE_DOCKER_LOG"]).exists()
