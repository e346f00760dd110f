"""Waiting for health: done, pending, failed at once on a crash loop, or out of time."""

from __future__ import annotations

from finance_stack.compose import Container, Project, Service
from finance_stack.wait import judge, wait

PROJECT = Project(
    name="t",
    profiles="demo",
    services={
        "prometheus": Service(
            "prometheus", "p", None, False, has_healthcheck=True, restart="unless-stopped"
        ),
        "demo-load": Service(
            "demo-load", "d", None, True, has_healthcheck=True, restart="unless-stopped"
        ),
        "demo-setup": Service("demo-setup", "d", None, True, restart="no"),
    },
)


def c(service: str, state: str, health: str = "", exit_code: int = 0) -> Container:
    return Container(
        id=service[:4], service=service, state=state, health=health, exit_code=exit_code, ports=()
    )


def test_healthy_services_and_a_finished_job_are_done() -> None:
    verdict = judge(
        PROJECT,
        [
            c("prometheus", "running", "healthy"),
            c("demo-load", "running", "healthy"),
            c("demo-setup", "exited"),
        ],
        {},
    )
    assert (verdict.pending, verdict.failed) == ({}, {})


def test_starting_and_missing_containers_are_pending() -> None:
    verdict = judge(
        PROJECT, [c("prometheus", "running", "starting"), c("demo-setup", "running")], {}
    )
    assert verdict.pending == {"prometheus": "starting", "demo-load": "not created"}
    assert verdict.failed == {}


def test_a_crash_loop_fails_at_once() -> None:
    containers = [
        c("prometheus", "running", "healthy"),
        c("demo-load", "restarting"),
        c("demo-setup", "exited"),
    ]
    assert judge(PROJECT, containers, {"demo": 1}).failed == {
        "demo-load": "keeps restarting (2 crashes): it fails on start"
    }
    # One crash and back up is a slow start, not yet a loop.
    assert judge(PROJECT, [c("demo-load", "running", "starting")], {"demo": 1}).failed == {}


def test_a_failed_job_and_an_exited_service_fail() -> None:
    verdict = judge(
        PROJECT,
        [c("prometheus", "exited", exit_code=0), c("demo-setup", "exited", exit_code=1)],
        {},
    )
    assert verdict.failed == {
        "prometheus": "exited (code 0) but should keep running",
        "demo-setup": "exited with code 1",
    }


def test_the_wait_reports_progress_then_gives_up_at_the_timeout() -> None:
    now = [0.0]
    lines: list[str] = []
    verdict = wait(
        PROJECT,
        poll=lambda: [
            c("prometheus", "running", "starting"),
            c("demo-load", "running", "healthy"),
            c("demo-setup", "exited"),
        ],
        restarts=lambda containers: {},
        timeout_seconds=30,
        progress=lines.append,
        clock=lambda: now[0],
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds),
    )
    assert verdict.failed == {"prometheus": "not healthy after 30s (starting)"}
    assert lines[0] == "waiting for health (0s/30s): prometheus(starting)"
    assert len(lines) == 3  # at 0, 10 and 20 seconds
