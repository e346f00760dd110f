"""Pull the images the project runs and does not build; a failure names the image's variable."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping

from finance_stack.compose import Project
from finance_stack.envfile import Settings


class PullError(RuntimeError):
    """An image could not be pulled; the message says how to mirror it."""


def present(image: str, environ: Mapping[str, str]) -> bool:
    """Whether the engine has `image` (nothing is pulled)."""
    inspected = subprocess.run(
        ["docker", "image", "inspect", image],
        capture_output=True,
        timeout=60,
        check=False,
        env=dict(environ),
    )
    return inspected.returncode == 0


def missing(project: Project, settings: Settings) -> list[tuple[str, str, str | None]]:
    """(service, image, variable) of each pulled image the engine does not have yet."""
    wanted: dict[str, tuple[str, str | None]] = {}
    for service in project.services.values():
        if not service.built and service.image:
            wanted.setdefault(service.image, (service.name, service.image_variable))
    return [
        (name, image, variable)
        for image, (name, variable) in sorted(wanted.items())
        if not present(image, settings.environ)
    ]


def pull(
    project: Project, settings: Settings, progress: Callable[[str], None], dry_run: bool
) -> int:
    """Pull every missing image, one progress line each; the number pulled."""
    todo = missing(project, settings)
    for service, image, variable in todo:
        if dry_run:
            print(f"docker pull {image}")
            continue
        progress(f"pulling {image} ({service})")
        result = subprocess.run(
            ["docker", "pull", "--quiet", image],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
            env=settings.environ,
        )
        if result.returncode != 0:
            fix = f"set {variable} in .env" if variable else "change its image"
            reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
            raise PullError(
                f"cannot pull {image} for {service} ({reason}): check the registry is reachable"
                f" (docker pull {image}), or mirror or build the image and {fix}"
                " (README.md: Mirrored or locally built images)"
            )
    return len(todo)
