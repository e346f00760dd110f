"""The stack's version as a backup records it: the image every upstream service runs (the pins
of docker-compose.yml, as Compose resolves them with this environment and .env), the project's
volumes, and `git describe` when the checkout is a git one.

Read with `docker compose config` over every profile (no engine needed), the one reader of the
compose file (finance_stack.compose): a restore compares these pins with the archive's.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from finance_stack.compose import Container, run
from finance_stack.envfile import Settings

# How the engine lists a container whose image tag has moved: the image id, short or whole.
_IMAGE_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}")


@dataclass(frozen=True)
class ComposeFacts:
    """Image per upstream service (our own images are built from the checkout), and volumes."""

    pins: dict[str, str]
    volumes: list[str]


def read(root: Path, settings: Settings) -> ComposeFacts:
    """The pins and volumes of the compose file, every profile included."""
    rendered = json.loads(
        run(root, ["config", "--format", "json"], settings.compose_environ(), all_profiles=True)
    )
    services = rendered.get("services") or {}
    pins = {
        name: str(service.get("image", ""))
        for name, service in sorted(services.items())
        if "build" not in service
    }
    return ComposeFacts(pins=pins, volumes=sorted(rendered.get("volumes") or {}))


def stack_version(root: Path, pins: dict[str, str]) -> str:
    """`git describe --always --dirty --tags` of the checkout, else a digest of the pins."""
    if not (root / ".git").exists():
        digest = hashlib.sha256(json.dumps(pins, sort_keys=True).encode()).hexdigest()
        return f"pins-{digest[:12]}"
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            return result.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return stack_version(Path("/nonexistent"), pins)


def drift(pins: dict[str, str], containers: list[Container]) -> dict[str, tuple[str, str]]:
    """The services whose container runs another image than the checkout pins: service ->
    (running, pinned). Our own images (built, not pinned) and unknown services are left out,
    and so is a container the engine names by image id: it does so when the tag it was created
    from has since moved to another image (a re-pull of the same pin), which is not a version."""
    return {
        c.service: (c.image, pins[c.service])
        for c in containers
        if c.service in pins
        and c.image
        and not _IMAGE_ID.fullmatch(c.image)
        and c.image != pins[c.service]
    }


def drift_message(drifted: dict[str, tuple[str, str]]) -> str:
    """Why a backup of a stack that runs other pins than the checkout is refused, and what to do."""
    lines = [
        f"{name} runs {running}, this checkout pins {pinned}"
        for name, (running, pinned) in sorted(drifted.items())
    ]
    return (
        "the running stack is not at this checkout's pins: " + "; ".join(lines) + ". An archive"
        " records the checkout's pins and restores only under them, but the data was written by"
        " the running versions. Back up from the checkout (and .env) that started the stack,"
        " then change the pins (docs/operations.md, Upgrade)"
    )
