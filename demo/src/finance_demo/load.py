"""`finance-demo load`: a steady synthetic load against the demo platform's gateway.

Requests are sent one at a time on a fixed schedule (`rate` per second; a slow answer delays
the next ones, it never causes a burst). Progress is logged every `report_seconds` as one ECS
JSON line, and a summary when SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from finance_demo.load_plan import LoadPlan, Planned

logger = logging.getLogger(__name__)

DEFAULT_RATE = 4.0
TIMEOUT_SECONDS = 5.0
# A status for requests that got no HTTP answer at all (the gateway down or too slow).
NO_ANSWER = 0


@dataclass(frozen=True)
class LoadSettings:
    """Where to send the load, how fast, and for how long (None: until stopped)."""

    target: str
    rate: float = DEFAULT_RATE
    seed: int = 42
    duration_seconds: float | None = None
    report_seconds: float = 30.0
    heartbeat: Path | None = None


@dataclass
class Tally:
    """Requests sent, by kind and status, and their total latency."""

    statuses: Counter[tuple[str, int]]
    seconds: float = 0.0

    def fields(self) -> dict[str, object]:
        """The tally as log fields: total, by status class, by kind."""
        by_class: Counter[str] = Counter()
        by_kind: Counter[str] = Counter()
        for (kind, status), count in self.statuses.items():
            by_class["none" if status == NO_ANSWER else f"{status // 100}xx"] += count
            by_kind[kind] += count
        total = sum(self.statuses.values())
        return {
            "requests": total,
            "status_classes": dict(sorted(by_class.items())),
            "kinds": dict(sorted(by_kind.items())),
            "mean_latency_seconds": round(self.seconds / total, 4) if total else None,
        }


def send(target: str, planned: Planned) -> tuple[int, dict[str, object]]:
    """Send one planned request; its status (NO_ANSWER if none) and JSON body."""
    data = json.dumps(planned.body).encode() if planned.body is not None else None
    request = urllib.request.Request(
        target.rstrip("/") + planned.path,
        data=data,
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method=planned.method,
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    except (urllib.error.URLError, OSError):
        return NO_ANSWER, {}
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {}
    return status, body if isinstance(body, dict) else {}


def run_load(settings: LoadSettings, stop: threading.Event) -> Tally:
    """Send the load until `stop` is set or the duration is over; return the tally."""
    plan = LoadPlan(seed=settings.seed)
    tally = Tally(Counter())
    interval = 1.0 / settings.rate
    started = next_at = last_report = time.monotonic()
    logger.info("load started", extra={"target": settings.target, "rate": settings.rate})
    while not stop.is_set():
        now = time.monotonic()
        if settings.duration_seconds is not None and now - started >= settings.duration_seconds:
            break
        if stop.wait(max(next_at - now, 0.0)):
            break
        # Behind schedule (a slow answer): carry on from now instead of catching up in a burst.
        next_at = max(next_at + interval, time.monotonic())
        planned = plan.next()
        sent = time.monotonic()
        status, body = send(settings.target, planned)
        tally.seconds += time.monotonic() - sent
        tally.statuses[(planned.kind, status)] += 1
        plan.learn(planned, status, body)
        if status == NO_ANSWER or status >= 500:
            logger.warning(
                "request failed",
                extra={"http.route": planned.route, "http.response.status_code": status},
            )
        if settings.heartbeat is not None:
            settings.heartbeat.touch()
        if time.monotonic() - last_report >= settings.report_seconds:
            last_report = time.monotonic()
            logger.info("load progress", extra=tally.fields())
    logger.info("load stopped", extra=tally.fields())
    return tally


def run(settings: LoadSettings) -> int:
    """Run the load until SIGTERM or SIGINT (or the duration); 0 on a clean stop."""
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run_load(settings, stop)
    return 0
