"""`status`: one line per container of the project, or a JSON array; rc 1 when none exists."""

from __future__ import annotations

import json

from finance_stack.compose import Container


def render(containers: list[Container], as_json: bool) -> tuple[str, int]:
    """The text to print and the exit status."""
    if as_json:
        rows = [
            {"service": c.service, "state": c.state, "health": c.health, "ports": list(c.ports)}
            for c in containers
        ]
        return json.dumps(rows, indent=2) + "\n", 0 if containers else 1
    if not containers:
        return "", 1
    lines = [
        f"{c.service:<22} {c.state:<10} {c.health or '-':<10} {' '.join(c.ports)}"
        for c in containers
    ]
    return "\n".join(lines) + "\n", 0


def empty_message(project_name: str) -> str:
    """What to say when the project has no container."""
    return (
        f"no containers of project {project_name}: the stack is not running;"
        " start it with ./start-monitoring.sh start"
    )
