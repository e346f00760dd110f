"""What an exporter reads and exposes: metric and query specifications (data, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

MetricKind = Literal["counter", "gauge", "histogram"]
SourceName = Literal["postgres", "redis"]
RedisCommand = Literal["llen", "scard", "mget_age"]

# Column names a Postgres query returns besides its label columns.
VALUE_COLUMN = "value"
BUCKET_COLUMN = "le"
COUNT_COLUMN = "count"
SUM_COLUMN = "sum"


@dataclass(frozen=True)
class MetricSpec:
    """One exposed metric family: name, type, help text, labels and its series budget."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...]
    max_series: int
    allow_negative: bool = False
    buckets: tuple[float, ...] = ()

    def value_columns(self) -> tuple[str, ...]:
        """Columns that carry numbers, in the order a query returns them."""
        if self.kind == "histogram":
            return (COUNT_COLUMN, SUM_COLUMN)
        return (VALUE_COLUMN,)

    def key_columns(self) -> tuple[str, ...]:
        """Columns that identify a row: the labels, plus the bucket bound for a histogram."""
        if self.kind == "histogram":
            return (*self.labels, BUCKET_COLUMN)
        return self.labels

    def series_budget(self) -> int:
        """Largest number of exposition lines (series) this family may produce."""
        if self.kind == "histogram":
            # Each label set has one line per bucket, +Inf, _sum and _count.
            return self.max_series * (len(self.buckets) + 3)
        return self.max_series


@dataclass(frozen=True)
class RedisRead:
    """A Redis read: one command over a bounded set of keys, one label value per key."""

    command: RedisCommand
    key_template: str
    label_values: tuple[str, ...]


@dataclass(frozen=True)
class QuerySpec:
    """One query that produces one metric family.

    A Postgres query returns the metric's key columns and its value columns. An incremental query
    returns only rows made final in the transaction-id range [%(low)s, %(high)s) and its totals are
    folded; a plain query returns the current values.
    """

    name: str
    metric: MetricSpec
    source: SourceName
    sql: str = ""
    incremental: bool = False
    redis: RedisRead | None = None
    timeout_seconds: float = 5.0
    max_age_seconds: float = 300.0
    origin: str = field(default="built-in", compare=False)


def xid_range(column: str) -> str:
    """SQL condition selecting the rows made final in the watermark range [low, high)."""
    return f"{column} >= %(low)s::xid8 AND {column} < %(high)s::xid8"
