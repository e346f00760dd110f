"""Turning a drill's fault on and off on the running stack, through docker compose.

A knob fault runs `finance-demo fault SERVICE` inside the demo-platform container (its /-/faults
answers loopback only, so this is the one way in): it reads the knobs first and puts back
exactly those when the fault is turned off, so a drill leaves the platform as it found it. A
kill fault is `docker compose kill demo-platform`, undone by `docker compose start`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from finance_stack.compose import ComposeError, run
from finance_stack.scenarios import PLATFORM_CONTAINER, Fault


class FaultControlError(RuntimeError):
    """The fault could not be turned on or off; the message says what failed."""


class FaultControl(Protocol):
    """Turns a scenario's fault on and off; each returns a line saying what it did."""

    def turn_on(self, fault: Fault) -> str:
        """Break what `fault` names."""
        ...

    def turn_off(self, fault: Fault) -> str:
        """Undo turn_on."""
        ...


class ComposeFaults:
    """The real control: docker compose exec, kill and start on this project."""

    def __init__(self, root: Path, environ: Mapping[str, str]) -> None:
        self._root = root
        self._environ = environ
        self._before: dict[str, dict[str, object]] = {}

    def _compose(self, *args: str) -> str:
        try:
            return run(self._root, list(args), self._environ, all_profiles=True)
        except ComposeError as err:
            raise FaultControlError(str(err)) from None

    def _knobs(self, service: str, *change: str) -> dict[str, object]:
        exec_ = ["exec", "-T", PLATFORM_CONTAINER, "finance-demo", "fault", service, *change]
        text = self._compose(*exec_)
        try:
            knobs = json.loads(text)
        except ValueError:
            raise FaultControlError(f"finance-demo fault {service} printed {text!r}") from None
        if not isinstance(knobs, dict):
            raise FaultControlError(f"finance-demo fault {service} printed {text!r}")
        return knobs

    def turn_on(self, fault: Fault) -> str:
        """Kill the platform, or set the knobs (keeping what they were)."""
        if fault.kills:
            self._compose("kill", PLATFORM_CONTAINER)
            return f"{PLATFORM_CONTAINER} killed"
        before = self._knobs(fault.service)
        self._before[fault.service] = before
        after = self._knobs(fault.service, "--put", json.dumps({**before, **fault.knobs}))
        return f"{fault.service} /-/faults now {json.dumps(after)}"

    def turn_off(self, fault: Fault) -> str:
        """Start the platform again, or put back the knobs turn_on found."""
        if fault.kills:
            self._compose("start", PLATFORM_CONTAINER)
            return f"{PLATFORM_CONTAINER} started"
        if fault.service not in self._before:
            return f"{fault.service}'s knobs were never changed"
        after = self._knobs(fault.service, "--put", json.dumps(self._before.pop(fault.service)))
        return f"{fault.service} /-/faults back to {json.dumps(after)}"
