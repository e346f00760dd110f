"""`upgrade`: what moves, and the pins the archive taken before it must record
(docs/operations.md, "Upgrade").

An upgrade starts from a checkout (or .env) whose pins have already changed under a running
stack. The archive taken first holds data the *running* versions wrote, so it records their
pins, not the checkout's: that is what lets `restore` put it back after a rollback, into the
checkout that pins them again, and refuse it anywhere else. The running versions are read from
the containers (`docker compose ps`: the image each was created from); a service that is not
running keeps the image the last `start` rendered for it (.state/project.json), and a service
outside that project the checkout's pin (it was not running, so it wrote nothing the archive
holds).
"""

from __future__ import annotations

from dataclasses import dataclass

from finance_stack.compose import Container, Project
from finance_stack.pins import drift


@dataclass(frozen=True)
class Plan:
    """The pins before the upgrade and the images that change: service -> (before, after)."""

    before: dict[str, str]
    changes: dict[str, tuple[str, str]]


def plan(pins: dict[str, str], kept: Project | None, containers: list[Container]) -> Plan:
    """The upgrade from what runs (and what the last start rendered) to the checkout's `pins`."""
    before = dict(pins)
    if kept is not None:
        before.update(
            {
                name: service.image
                for name, service in kept.services.items()
                if name in pins and service.image and not service.built
            }
        )
    running = [c for c in containers if c.state == "running"]
    before.update({name: image for name, (image, _) in drift(before, running).items()})
    changes = {name: (before[name], pins[name]) for name in pins if before[name] != pins[name]}
    return Plan(before=before, changes=changes)


def describe(chosen: Plan) -> list[str]:
    """One line per image that changes, or why nothing does."""
    if not chosen.changes:
        return [
            "no image pin changes: the running stack is at this checkout's pins (the stack's"
            " own images are still rebuilt from the checkout)"
        ]
    return [f"{name}: {old} -> {new}" for name, (old, new) in sorted(chosen.changes.items())]
