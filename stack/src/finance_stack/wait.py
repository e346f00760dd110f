"""Wait until every container of the project is healthy, or fail early and show why.

Polls `docker compose ps` every POLL_SECONDS for at most WAIT_TIMEOUT, a progress line every
REPORT_SECONDS. A one-off job that exited 0 is done; one that exited otherwise has failed; a
service that keeps restarting (a crash loop) has failed too, without waiting out the timeout.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from finance_stack.compose import Container, Project
from finance_stack.envfile import Settings

POLL_SECONDS = 2.0
REPORT_SECONDS = 10.0
# Restarts during start before a service counts as crash-looping.
CRASH_LOOP_RESTARTS = 2


@dataclass(frozen=True)
class Verdict:
    """Where the wait stands: services done, pending (with why) and failed (with why)."""

    pending: dict[str, str]
    failed: dict[str, str]


def judge(project: Project, containers: list[Container], restarts: dict[str, int]) -> Verdict:
    """One poll's verdict over the project's services."""
    pending: dict[str, str] = {}
    failed: dict[str, str] = {}
    by_service = {c.service: c for c in containers}
    for name in sorted(project.services):
        container = by_service.get(name)
        if container is None:
            pending[name] = "not created"
            continue
        count = restarts.get(container.id, 0)
        # Docker restarts a crashed service with a growing delay ("restarting" in between): a
        # second crash during start is a crash loop, not a slow start.
        crashes = count + (1 if container.state == "restarting" else 0)
        if crashes >= CRASH_LOOP_RESTARTS:
            failed[name] = f"keeps restarting ({crashes} crashes): it fails on start"
        elif container.state == "exited":
            if container.exit_code != 0:
                failed[name] = f"exited with code {container.exit_code}"
            elif not project.services[name].one_off:
                failed[name] = "exited (code 0) but should keep running"
        elif container.state == "running":
            if container.health not in ("", "healthy"):
                pending[name] = container.health
        else:
            pending[name] = container.state
    return Verdict(pending=pending, failed=failed)


def restart_counts(containers: list[Container], settings: Settings) -> dict[str, int]:
    """Container id -> RestartCount, from one `docker inspect`."""
    ids = [c.id for c in containers if c.id]
    if not ids:
        return {}
    result = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}} {{.RestartCount}}", *ids],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=settings.environ,
    )
    counts = {}
    for line in result.stdout.splitlines():
        full_id, _, count = line.partition(" ")
        for short in ids:
            if full_id.startswith(short):
                counts[short] = int(count or 0)
    return counts


def wait(
    project: Project,
    poll: Callable[[], list[Container]],
    restarts: Callable[[list[Container]], dict[str, int]],
    timeout_seconds: float,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Poll until nothing is pending or something failed or the time is up."""
    started = clock()
    last_report = started - REPORT_SECONDS
    while True:
        containers = poll()
        verdict = judge(project, containers, restarts(containers))
        elapsed = clock() - started
        if verdict.failed or not verdict.pending:
            return verdict
        if elapsed >= timeout_seconds:
            reason = f"not healthy after {timeout_seconds:.0f}s"
            return Verdict(
                pending={}, failed={n: f"{reason} ({w})" for n, w in verdict.pending.items()}
            )
        if clock() - last_report >= REPORT_SECONDS:
            waiting = " ".join(f"{n}({w})" for n, w in verdict.pending.items())
            progress(f"waiting for health ({elapsed:.0f}s/{timeout_seconds:.0f}s): {waiting}")
            last_report = clock()
        sleep(POLL_SECONDS)
