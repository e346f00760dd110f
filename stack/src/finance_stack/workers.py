"""The host's side of a worker (finance_stack.volume_worker): its process, its tar stream on
stdin or stdout, its protocol lines on stderr; and a pause of services around one worker."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import IO, Any

from finance_stack.engine import Engine, EngineError
from finance_stack.volume_worker import DONE, ERROR, READY

# A worker container starts within this (the image is built by start).
READY_TIMEOUT_SECONDS = 300.0
# The longest a service stays paused: then it is unpaused, and the backup of it fails.
PAUSE_LIMIT_SECONDS = 300.0
STEP_TIMEOUT_SECONDS = 7200.0


class WorkerError(RuntimeError):
    """A worker failed: what it was doing, its own reason, its last lines."""


class Worker:
    """One worker process: its stdin, stdout (a tar stream) and its protocol lines on stderr."""

    def __init__(self, command: list[str], environ: dict[str, str], what: str) -> None:
        self.what = what
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
        )
        self._events: queue.Queue[str | None] = queue.Queue()
        self._lines: deque[str] = deque(maxlen=20)
        self._threads: list[threading.Thread] = []
        self._failures: list[BaseException] = []
        self._spawn(self._read_stderr)

    def _spawn(self, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as err:  # handed to the caller by join()
                self._failures.append(err)

        thread = threading.Thread(target=guarded, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith("@@"):
                self._events.put(line)
            elif line.strip():
                self._lines.append(line)
        self._events.put(None)

    def read_stdout(self, consume: Callable[[IO[bytes]], Any]) -> list[Any]:
        """Run `consume(stdout)` in a thread; its result lands in the returned list."""
        result: list[Any] = []
        stdout = self.process.stdout
        assert stdout is not None
        self._spawn(lambda: result.append(consume(stdout)))
        return result

    def feed_stdin(self, produce: Callable[[IO[bytes]], Any]) -> None:
        """Run `produce(stdin)` in a thread, then close stdin."""
        stdin = self.process.stdin
        assert stdin is not None

        def feed() -> None:
            try:
                produce(stdin)
            finally:
                with contextlib.suppress(OSError):
                    stdin.close()

        self._spawn(feed)

    def send(self, line: str) -> None:
        """One protocol line on stdin (GO, or anything else to abort)."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()

    def _failed(self, why: str) -> WorkerError:
        tail = "; ".join(self._lines)
        return WorkerError(f"{self.what}: {why}" + (f" (last lines: {tail})" if tail else ""))

    def expect(self, event: str, timeout_seconds: float) -> str:
        """Wait for the protocol line `event`; its payload."""
        try:
            line = self._events.get(timeout=timeout_seconds)
        except queue.Empty:
            raise self._failed(f"no {event} within {timeout_seconds:.0f}s") from None
        if line is None:
            raise self._failed(f"stopped before {event} (exit {self.process.wait()})")
        if line.startswith(ERROR):
            raise self._failed(line[len(ERROR) :].strip())
        if not line.startswith(event):
            raise self._failed(f"said {line!r}, expected {event}")
        return line[len(event) :].strip()

    def finish(self, timeout_seconds: float = STEP_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Wait for @@done and the exit; what the worker reported."""
        result: dict[str, Any] = json.loads(self.expect(DONE, timeout_seconds) or "{}")
        self.join(timeout_seconds)
        return result

    def join(self, timeout_seconds: float) -> None:
        """Wait for the process and the threads; re-raise what a thread raised."""
        try:
            code = self.process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self._failed(f"still running after {timeout_seconds:.0f}s: killed") from None
        for thread in self._threads:
            thread.join(timeout=60)
        if self._failures:
            raise self._failures[0]
        if code != 0:
            raise self._failed(f"exit {code}")

    def kill(self) -> None:
        """Stop the process (by its own pid) if it still runs."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class _Interrupted(BaseException):
    """SIGTERM while a service is paused: unwind, so the finally unpauses it."""


@contextlib.contextmanager
def _terminable() -> Iterator[None]:
    def interrupt(signum: int, frame: object) -> None:
        raise _Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def paused(
    engine: Engine, services: list[str], worker: Worker, limit_seconds: float = PAUSE_LIMIT_SECONDS
) -> tuple[dict[str, Any], float]:
    """Pause `services`, let the waiting worker go, unpause as soon as it is done (always, in a
    finally): its report and how long they stayed paused. A refused pause tells the worker to
    stop and changes nothing: only services this call paused are unpaused."""
    worker.expect(READY, READY_TIMEOUT_SECONDS)
    done: list[str] = []
    with _terminable():
        for service in services:
            try:
                engine.pause(service)
            except EngineError as err:
                worker.send("ABORT")
                for other in reversed(done):
                    _unpause(engine, other)
                raise EngineError(
                    f"could not pause {service} ({err}); nothing was changed: is the cgroup"
                    " freezer available to this engine (rootless Docker on cgroup v1 has none)?"
                ) from None
            done.append(service)
        started = time.monotonic()
        try:
            worker.send("GO")
            report = json.loads(worker.expect(DONE, limit_seconds) or "{}")
        finally:
            held = time.monotonic() - started
            for service in reversed(done):
                _unpause(engine, service)
    return report, held


def _unpause(engine: Engine, service: str) -> None:
    try:
        engine.unpause(service)
    except EngineError as err:
        raise EngineError(
            f"{service} is still paused, unpausing failed ({err}): run"
            f" `docker compose unpause {service}` in the project folder now"
        ) from None
