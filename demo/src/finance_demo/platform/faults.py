"""Fault knobs of the demo platform's services: what a drill turns on to break one on purpose.

Each service has a FaultSwitch holding its current Faults, all off at start; nothing is kept
anywhere else, so a restart clears them. Every service has the two request knobs:

  error_ratio        0..1: that share of its requests is answered 500 before the handler runs
  added_latency_ms   0..30000: slept before the handler runs, inside the timed request

and three have one of their own, each making the real source of a business alert say so:

  payment       provider_failing   the processor fails every charge: the payment row is made
                                   final as failed (what the revenue exporter counts) and the
                                   charge is answered 402 with the provider's error
  market-data   feed_stalled       the feed writes no ticks, so md:last_tick:<provider> ages
  trading       signal_accuracy    null (the usual outcomes) or 0..1: a closing signal succeeds
                                   with that probability and fails otherwise, so the model
                                   evaluations (evaluation.py) score what the signals did

The switch is read and replaced through GET and PUT /-/faults on the service's own port, from
loopback only (http.py); `finance-demo fault SERVICE ...` inside the container calls it.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

COMMON_KNOBS = ("error_ratio", "added_latency_ms")
OWN_KNOBS: dict[str, tuple[str, ...]] = {
    "payment": ("provider_failing",),
    "market-data": ("feed_stalled",),
    "trading": ("signal_accuracy",),
}
# Past the gateway's and the load's 5 s timeouts already; more only holds threads longer.
MAX_ADDED_LATENCY_MS = 30_000


class FaultError(ValueError):
    """A fault setting the service refuses; the message names every bad knob."""


@dataclass(frozen=True)
class Faults:
    """One service's fault knobs; the defaults are "no fault"."""

    error_ratio: float = 0.0
    added_latency_ms: int = 0
    provider_failing: bool = False
    feed_stalled: bool = False
    signal_accuracy: float | None = None

    def knobs(self, service: str) -> dict[str, object]:
        """The knobs `service` has, with their values, as JSON."""
        values = asdict(self)
        return {name: values[name] for name in knobs_of(service)}

    @property
    def active(self) -> bool:
        """Whether any knob is away from its default."""
        return self != Faults()


def knobs_of(service: str) -> tuple[str, ...]:
    """The knob names of `service`."""
    return (*COMMON_KNOBS, *OWN_KNOBS.get(service, ()))


def _ratio(value: object, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        return "a number from 0 to 1" + (" or null" if nullable else "")
    return None


def _problem(name: str, value: object) -> str | None:
    """What is wrong with knob `name` set to `value`, if anything."""
    if name == "error_ratio":
        return _ratio(value)
    if name == "signal_accuracy":
        return _ratio(value, nullable=True)
    if name == "added_latency_ms":
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or not 0 <= value <= MAX_ADDED_LATENCY_MS:  # type: ignore[operator]
            return f"a whole number of milliseconds from 0 to {MAX_ADDED_LATENCY_MS}"
        return None
    return None if isinstance(value, bool) else "true or false"


def parse(service: str, body: Mapping[str, object]) -> Faults:
    """The Faults a PUT body sets: the knobs it names, every other knob off."""
    known = knobs_of(service)
    unknown = sorted(set(body) - set(known))
    problems = [f"{service} has no knob {name!r}" for name in unknown]
    for name in sorted(set(body) & set(known)):
        problem = _problem(name, body[name])
        if problem:
            problems.append(f"{name} must be {problem}, got {body[name]!r}")
    if problems:
        raise FaultError("; ".join(problems) + f" (knobs of {service}: {', '.join(known)})")
    ratio, latency = body.get("error_ratio", 0.0), body.get("added_latency_ms", 0)
    accuracy = body.get("signal_accuracy")
    # Validated above; the asserts only tell the type checker.
    assert isinstance(ratio, int | float) and isinstance(latency, int)
    assert accuracy is None or isinstance(accuracy, int | float)
    return Faults(
        error_ratio=float(ratio),
        added_latency_ms=latency,
        provider_failing=body.get("provider_failing") is True,
        feed_stalled=body.get("feed_stalled") is True,
        signal_accuracy=None if accuracy is None else float(accuracy),
    )


class FaultSwitch:
    """The current Faults of one service, safe to read and replace from any thread."""

    def __init__(self, service: str, rng: random.Random | None = None) -> None:
        self.service = service
        self._faults = Faults()
        self._rng = rng or random.Random()
        self._lock = threading.Lock()

    @property
    def current(self) -> Faults:
        """The faults in force now."""
        return self._faults

    def set(self, faults: Faults) -> None:
        """Replace the faults; a change is logged, so the service's log shows when a drill ran."""
        with self._lock:
            before, self._faults = self._faults, faults
        if faults != before:
            logger.warning(
                "faults changed" if faults.active else "faults cleared",
                extra={"faults": faults.knobs(self.service)},
            )

    def fails_request(self) -> bool:
        """Whether this request draws an injected error (error_ratio of them do)."""
        ratio = self._faults.error_ratio
        with self._lock:
            return ratio > 0 and self._rng.random() < ratio

    def signal_succeeds(self) -> bool | None:
        """With signal_accuracy set, whether a closing signal succeeds; else None (usual mix)."""
        accuracy = self._faults.signal_accuracy
        if accuracy is None:
            return None
        with self._lock:
            return self._rng.random() < accuracy
