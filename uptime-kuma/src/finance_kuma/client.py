"""Uptime Kuma as the provisioner sees it: uptime-kuma-api's client, reached within a deadline.

The client speaks Kuma's Socket.IO API (there is no REST API for monitors in 1.23). KumaClient
is the part of uptime_kuma_api.UptimeKumaApi this package calls, with the library's own
signatures; a failed call raises the library's UptimeKumaException with Kuma's message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from uptime_kuma_api import UptimeKumaApi, UptimeKumaException

# Each attempt: the library's own connect and event timeout. Between attempts, a pause.
CALL_TIMEOUT_SECONDS = 10.0
RETRY_SECONDS = 3.0


class KumaError(RuntimeError):
    """Kuma could not be provisioned; the message says why and what to do."""


class KumaUnreachableError(KumaError):
    """Kuma did not answer before the deadline."""


class LoginRefusedError(KumaError):
    """Kuma refused the admin account's login."""


class KumaClient(Protocol):
    """The calls of uptime_kuma_api.UptimeKumaApi (1.2.1) the provisioner makes."""

    def need_setup(self) -> bool:
        """True until Kuma has its first account."""

    def setup(self, username: str, password: str) -> dict[str, Any]:
        """Create the first account."""

    def login(self, username: str | None = None, password: str | None = None) -> dict[str, Any]:
        """Log in; UptimeKumaException with Kuma's message when refused."""

    def get_monitors(self) -> list[dict[str, Any]]:
        """Every monitor of the account, as Kuma's toJSON has it (tags included)."""

    def add_monitor(self, **kwargs: Any) -> dict[str, Any]:
        """Create a monitor; the answer's monitorID is its id."""

    def edit_monitor(self, id_: int, **kwargs: Any) -> dict[str, Any]:
        """Change a monitor's fields."""

    def delete_monitor(self, id_: int) -> dict[str, Any]:
        """Remove a monitor and its history."""

    def get_tags(self) -> list[dict[str, Any]]:
        """Every tag (id, name, color)."""

    def add_tag(self, **kwargs: Any) -> dict[str, Any]:
        """Create a tag (name, color); returns it with its id."""

    def add_monitor_tag(self, tag_id: int, monitor_id: int, value: str = "") -> dict[str, Any]:
        """Put a tag with a value on a monitor."""

    def get_api_keys(self) -> list[dict[str, Any]]:
        """The account's API keys (id, name, active, expires, status), never their secrets."""

    def add_api_key(self, name: str, expires: str | None, active: bool) -> dict[str, Any]:
        """Create a key; the answer's `key` is its clear text, shown this once."""

    def delete_api_key(self, id_: int) -> dict[str, Any]:
        """Remove a key."""

    def disconnect(self) -> None:
        """Close the connection."""


Connect = Callable[[str], KumaClient]


class Clock(Protocol):
    """Time for the wait: monotonic seconds, and a pause."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start."""

    def sleep(self, seconds: float) -> None:
        """Pause."""


def library_client(url: str) -> KumaClient:
    """uptime-kuma-api's client of the Kuma at `url`, connected (UptimeKumaException if not)."""
    client: KumaClient = UptimeKumaApi(url, timeout=CALL_TIMEOUT_SECONDS)
    return client


def connect(
    make: Connect,
    url: str,
    wait_seconds: float,
    clock: Clock,
    progress: Callable[[str], None],
) -> KumaClient:
    """A connected client, retried every RETRY_SECONDS with a progress line until
    `wait_seconds` have passed; then KumaUnreachableError."""
    started = clock.monotonic()
    while True:
        try:
            return make(url)
        except UptimeKumaException as err:
            waited = clock.monotonic() - started
            if waited + RETRY_SECONDS > wait_seconds:
                raise KumaUnreachableError(
                    f"Uptime Kuma at {url} did not answer within {wait_seconds:g}s ({err}): is it"
                    " running and healthy? ./start-monitoring.sh health, then"
                    " ./start-monitoring.sh logs uptime-kuma"
                ) from err
            progress(
                f"waiting for Uptime Kuma at {url} ({waited:.0f}s of {wait_seconds:g}s): {err}"
            )
            clock.sleep(RETRY_SECONDS)
