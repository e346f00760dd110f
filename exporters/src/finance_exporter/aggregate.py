"""Incremental totals: fold the rows made final above a watermark into running sums (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from finance_exporter.spec import MetricSpec
from finance_exporter.values import Key, Shaped, Values, add_values, cap_series


@dataclass(frozen=True)
class Totals:
    """Running sums per label key, complete for every row final below `watermark`."""

    watermark: int = 0
    values: Mapping[Key, Values] = field(default_factory=dict)


@dataclass(frozen=True)
class Fold:
    """The result of folding one batch: new totals and what the batch had to skip."""

    totals: Totals
    skipped: Mapping[str, int]


def apply(totals: Totals, batch: Shaped, high: int, metric: MetricSpec) -> Fold:
    """Add `batch`, the rows final in [totals.watermark, high), and move the watermark to `high`.

    Label sets already counted keep counting; a new one beyond the metric's `max_series` is
    dropped and counted as skipped, so a misbehaving query cannot grow the exposition without bound.
    """
    if high < totals.watermark:
        raise ValueError(f"watermark cannot move back from {totals.watermark} to {high}")
    capped = cap_series(batch, metric, admitted=totals.values)
    merged: dict[Key, Values] = dict(totals.values)
    for key, values in capped.values.items():
        previous = merged.get(key)
        merged[key] = values if previous is None else add_values(previous, values)
    return Fold(totals=Totals(watermark=high, values=merged), skipped=capped.skipped)
