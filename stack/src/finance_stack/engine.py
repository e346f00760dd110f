"""The engine as backup and restore see it: pause, unpause, stop, start, and the command line
of a one-off worker next to a store's files (finance_stack.volume_worker).

Everything that touches the engine goes through an `Engine`, so `restore`'s checks can be shown
to run before anything is touched, and the workers can run as local processes in the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from finance_stack.compose import ComposeError, Project, argv, run
from finance_stack.envfile import Settings
from finance_stack.health import health_label
from finance_stack.stores import Store

# Compose's profile of the workers: nobody starts them but backup and restore.
PROFILE = "ops"
VOLUME_SERVICE = "volume-worker"
ELASTIC_SERVICE = "elastic-worker"
MOUNT = "/volume"
# The elastic-worker's own user's password (elastic_snapshot.USER), not the superuser's.
ELASTIC_PASSWORD_FILE = "/run/secrets/elasticsearch_snapshot_password"


class EngineError(RuntimeError):
    """The engine refused a pause, stop, start or worker: the message says which and why."""


class Engine(Protocol):
    """What backup and restore need from the engine."""

    environ: dict[str, str]

    def pause(self, service: str) -> None:
        """Freeze a running service's processes (the cgroup freezer)."""

    def unpause(self, service: str) -> None:
        """Thaw them."""

    def stop(self, services: list[str]) -> None:
        """Stop services (their containers stay)."""

    def start(self, services: list[str]) -> None:
        """Start stopped services."""

    def worker(
        self, store: Store, args: list[str], read_only: bool, caps: tuple[str, ...] = ()
    ) -> list[str]:
        """The argv of a volume worker over `store`'s files (at mount_path)."""

    def elastic(self, args: list[str]) -> list[str]:
        """The argv of an Elasticsearch worker (its URL and password file added)."""

    def mount_path(self, store: Store) -> str:
        """Where a worker sees `store`'s files."""


class ComposeEngine:
    """The Docker engine, through `docker compose` with every profile."""

    def __init__(self, root: Path, settings: Settings, project: Project) -> None:
        self.root, self.project = root, project
        self.environ = settings.compose_environ()

    def _compose(self, args: list[str]) -> None:
        try:
            run(self.root, args, self.environ, all_profiles=True)
        except ComposeError as err:
            raise EngineError(str(err)) from None

    def pause(self, service: str) -> None:
        """`docker compose pause`."""
        self._compose(["pause", service])

    def unpause(self, service: str) -> None:
        """`docker compose unpause`."""
        self._compose(["unpause", service])

    def stop(self, services: list[str]) -> None:
        """`docker compose stop`."""
        if services:
            self._compose(["stop", *services])

    def start(self, services: list[str]) -> None:
        """`docker compose start`."""
        if services:
            self._compose(["start", *services])

    def _run(self, service: str, *args: str) -> list[str]:
        # -T: the tar stream is binary; --no-deps: the worker needs no other service.
        return argv(
            self.root, "--profile", PROFILE, "run", "--rm", "--no-deps", "-T", "--quiet-pull",
            *args,
        )  # fmt: skip

    def worker(
        self, store: Store, args: list[str], read_only: bool, caps: tuple[str, ...] = ()
    ) -> list[str]:
        """`compose run` of the volume worker as the store's uid, its volume at /volume."""
        # `compose run --volume NAME:` takes NAME as the engine's volume name, not the compose
        # file's key: given "prometheus-data" it makes a new, empty, global volume of that name.
        # The project's volume is <project>_<key> (the compose file names none explicitly).
        source = (
            f"{self.project.name}_{store.volume}" if store.volume else str(self.root / "secrets")
        )
        mount = f"{source}:{MOUNT}{':ro' if read_only else ''}"
        added = [flag for cap in caps for flag in ("--cap-add", cap)]
        user = f"{store.uid}:{store.gid}"
        return [
            *self._run(VOLUME_SERVICE, "--user", user, "--volume", mount, *added),
            VOLUME_SERVICE,
            "volume-worker",
            *args,
        ]

    def elastic(self, args: list[str]) -> list[str]:
        """`compose run` of the Elasticsearch worker, the snapshot volume at /volume."""
        service = self.project.services["elasticsearch"]
        _, label = health_label(service)
        url = f"http://{service.name}:{label[0]}"
        extra = ["--url", url, "--password-file", ELASTIC_PASSWORD_FILE]
        return [*self._run(ELASTIC_SERVICE), ELASTIC_SERVICE, "volume-worker", *args, *extra]

    def mount_path(self, store: Store) -> str:
        """Always /volume in a worker container."""
        return MOUNT
