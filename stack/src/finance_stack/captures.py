"""What a store holds, read from its service's own API (or its database file): recorded in the
backup's manifest, and read again after a restore to show it is all back.

Prometheus: the series and the samples of the backed-up range (start, end]. The series come
from /api/v1/series over the range, as a count and a digest of the sorted label sets, so the
same number of different series does not pass; the samples are summed from count_over_time
over consecutive windows ending at `end` (range queries, each step's window small enough for
Prometheus' per-query sample limit), metric name by metric name.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import sqlite3
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 120.0
EVERY_SERIES = '{__name__=~".+"}'
WINDOW_SECONDS = 3600
# Prometheus loads at most 50 million samples per query (--query.max-samples): with this many
# series or more, the window shrinks so that one window of 15-second samples stays well below.
SERIES_PER_FULL_WINDOW = 100_000
MIN_WINDOW_SECONDS = 60
# Metric names per range query (each its own term; the query is POSTed).
NAMES_PER_QUERY = 40
# Prometheus' "no samples yet" value of prometheus_tsdb_lowest_timestamp_seconds (MaxInt64 ms).
_NO_SAMPLES = 9.0e15


class CaptureError(RuntimeError):
    """A service's API did not answer as expected; the message names the URL."""


def get_json(url: str, timeout: float = TIMEOUT_SECONDS) -> Any:
    """GET a JSON document; CaptureError naming the URL on any failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise CaptureError(f"{url}: HTTP {err.code}: {err.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise CaptureError(f"{url}: {getattr(err, 'reason', err)}") from None


def _prometheus_data(base: str, path: str, params: dict[str, str]) -> Any:
    document = get_json(f"{base}{path}?{urllib.parse.urlencode(params)}")
    if not isinstance(document, dict) or document.get("status") != "success":
        raise CaptureError(f"{base}{path}: {document}")
    return document["data"]


def lowest_timestamp(base: str) -> int | None:
    """The oldest sample's time (whole seconds, rounded down) from Prometheus' own /metrics;
    None while it holds no sample."""
    try:
        with urllib.request.urlopen(f"{base}/metrics", timeout=TIMEOUT_SECONDS) as response:
            text = response.read().decode()
    except (urllib.error.URLError, OSError) as err:
        raise CaptureError(f"{base}/metrics: {getattr(err, 'reason', err)}") from None
    for line in text.splitlines():
        if line.startswith("prometheus_tsdb_lowest_timestamp_seconds "):
            value = float(line.split()[1])
            return None if value >= _NO_SAMPLES else math.floor(value)
    raise CaptureError(f"{base}/metrics: no prometheus_tsdb_lowest_timestamp_seconds")


@dataclass(frozen=True)
class PrometheusCounts:
    """The series and samples Prometheus holds over (start, end]."""

    start: int
    end: int
    series: int
    series_sha256: str
    samples: int


def _window(series: int, span: int) -> int:
    window = WINDOW_SECONDS
    if series > SERIES_PER_FULL_WINDOW:
        window = max(MIN_WINDOW_SECONDS, WINDOW_SECONDS * SERIES_PER_FULL_WINDOW // series)
    return max(1, min(window, span + 1))


def _post(base: str, path: str, params: dict[str, str]) -> Any:
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(f"{base}{path}", data=data)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            document = json.loads(response.read())
    except urllib.error.HTTPError as err:
        raise CaptureError(f"{base}{path}: HTTP {err.code}: {err.read()[:300]!r}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise CaptureError(f"{base}{path}: {getattr(err, 'reason', err)}") from None
    return document["data"]


def _samples(base: str, names: list[str], window: int, first: int, end: int) -> int:
    """The samples of every series of `names`, summed over the windows. One term per metric
    name: count_over_time drops the name, so two series that differ only in their names
    would collide in one vector (an error); within one name they cannot."""
    total = 0
    for start in range(0, len(names), NAMES_PER_QUERY):
        terms = [
            f"(sum(count_over_time({{__name__={json.dumps(name)}}}[{window}s])) or vector(0))"
            for name in names[start : start + NAMES_PER_QUERY]
        ]
        params = {"query": " + ".join(terms), "start": str(first), "end": str(end)}
        data = _post(base, "/api/v1/query_range", {**params, "step": str(window)})
        total += sum(int(float(v)) for result in data["result"] for _, v in result["values"])
    return total


def prometheus_counts(base: str, start: int, end: int) -> PrometheusCounts:
    """Count the series and samples over (start, end] (whole seconds)."""
    span = {"start": str(start), "end": str(end)}
    listed = _prometheus_data(base, "/api/v1/series", {"match[]": EVERY_SERIES, **span})
    labels = sorted(json.dumps(series, sort_keys=True) for series in listed)
    digest = hashlib.sha256("\n".join(labels).encode()).hexdigest()
    names = sorted({series["__name__"] for series in listed})
    window = _window(len(labels), end - start)
    # Windows (t - window, t] for t = first, first + window, ..., end: they cover (end - n *
    # window, end], which starts before `start`, so every sample of the range is counted once.
    steps = (end - start) // window + 1
    first = end - (steps - 1) * window
    samples = _samples(base, names, window, first, end)
    return PrometheusCounts(start, end, len(labels), digest, samples)


def alertmanager_silences(base: str) -> list[dict[str, str]]:
    """Every silence Alertmanager holds (expired ones too): id, state and end, sorted by id."""
    listed = get_json(f"{base}/api/v2/silences")
    if not isinstance(listed, list):
        raise CaptureError(f"{base}/api/v2/silences: not a list")
    return sorted(
        ({"id": s["id"], "state": s["status"]["state"], "endsAt": s["endsAt"]} for s in listed),
        key=lambda s: s["id"],
    )


def jaeger_services(base: str) -> list[str]:
    """The services Jaeger holds traces of (its query API), sorted."""
    document = get_json(f"{base}/api/services")
    return sorted(document.get("data") or []) if isinstance(document, dict) else []


def sqlite_count(database: Path, table: str) -> int | None:
    """Rows of `table` in a copied SQLite database (with its -wal/-journal beside it), read
    from a temporary copy so the copy itself stays byte for byte what was archived; None if
    it cannot be read (no such file or table, or Python without sqlite3)."""
    if not database.is_file():
        return None
    with tempfile.TemporaryDirectory(prefix="ai-finance-count-") as scratch:
        for suffix in ("", "-wal", "-journal"):
            source = database.with_name(database.name + suffix)
            if source.is_file():
                shutil.copy2(source, Path(scratch) / source.name)
        try:
            with sqlite3.connect(Path(scratch) / database.name) as connection:
                row = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        except sqlite3.Error:
            return None
    return int(row[0])
