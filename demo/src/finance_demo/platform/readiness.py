"""Readiness: can the platform serve? Each datastore answers a trivial probe within a deadline.

/healthz is liveness (the process serves HTTP) and never touches a datastore; /readyz asks
Postgres (`SELECT 1`) and Redis (`PING`). The five services share one Readiness, since they share
the datastores.

A probe runs in a thread of its own and the request waits for it at most `timeout_seconds`, so a
frozen datastore (a stopped process, a dropped network) can never hang the handler. At most one
probe per datastore runs at a time: while the previous one is still stuck, that datastore counts
as failing, and no further thread is started.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# The healthcheck asks five ports in a row within its own 5s: one second per datastore is ample
# for a trivial query on a healthy server, and short enough to say "not ready" in time.
READINESS_TIMEOUT_SECONDS = 1.0

Probe = Callable[[float], None]


@dataclass(frozen=True)
class ReadinessReport:
    """Which datastores failed their probe, each with a short reason; empty when ready."""

    failing: Mapping[str, str]

    @property
    def ready(self) -> bool:
        """True when every datastore answered."""
        return not self.failing


class _Flight:
    """One probe of one datastore, run at most once at a time in a daemon thread."""

    def __init__(self, name: str, probe: Probe) -> None:
        self._name = name
        self._probe = probe
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._error: str | None = None

    def start(self, timeout_seconds: float) -> bool:
        """Start a probe unless one is still running; False if the previous one is stuck."""
        with self._lock:
            if not self._done.is_set():
                return False
            self._done.clear()
            self._error = None
        threading.Thread(
            target=self._run, args=(timeout_seconds,), name=f"readyz-{self._name}", daemon=True
        ).start()
        return True

    def _run(self, timeout_seconds: float) -> None:
        try:
            self._probe(timeout_seconds)
        except Exception as err:  # any failure of the probe means "not ready"
            self._error = (str(err).strip() or type(err).__name__).splitlines()[0]
        finally:
            self._done.set()

    def result(self, deadline: float, timeout_seconds: float) -> str | None:
        """None if the probe succeeded by `deadline`, else why not."""
        if not self._done.wait(max(deadline - time.monotonic(), 0.0)):
            return f"no answer within {timeout_seconds:g}s"
        return self._error


class Readiness:
    """Probes every datastore concurrently and reports the ones that failed."""

    def __init__(
        self, probes: Mapping[str, Probe], timeout_seconds: float = READINESS_TIMEOUT_SECONDS
    ) -> None:
        self._flights = {name: _Flight(name, probe) for name, probe in probes.items()}
        self._timeout_seconds = timeout_seconds

    def check(self) -> ReadinessReport:
        """Probe each datastore, waiting at most timeout_seconds in all."""
        deadline = time.monotonic() + self._timeout_seconds
        started = {name: f.start(self._timeout_seconds) for name, f in self._flights.items()}
        failing = {}
        for name, flight in self._flights.items():
            if not started[name]:
                failing[name] = "the previous check has not answered yet"
                continue
            error = flight.result(deadline, self._timeout_seconds)
            if error is not None:
                failing[name] = error
        return ReadinessReport(failing=dict(sorted(failing.items())))
