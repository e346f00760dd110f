"""A clock the tests move by hand (the exporter's Clock protocol), never slept on."""

from __future__ import annotations


class FakeClock:
    """Wall and monotonic time that only change when a test calls `advance`."""

    def __init__(self, wall: float = 1_700_000_000.0, monotonic: float = 1_000.0) -> None:
        self._wall = wall
        self._monotonic = monotonic

    def time(self) -> float:
        """Seconds since the Unix epoch."""
        return self._wall

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return self._monotonic

    def sleep(self, seconds: float) -> None:
        """A pause: the clocks move on at once."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        self._wall += seconds
        self._monotonic += seconds
