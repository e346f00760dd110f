"""Turn raw query results into exact, validated metric values; bad data is skipped and counted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from prometheus_client import utils as prometheus_utils

from finance_exporter.errors import SourceQueryError
from finance_exporter.spec import BUCKET_COLUMN, MetricSpec, RedisRead

Key = tuple[str, ...]
Values = tuple[Decimal, ...]

# Reasons a value is skipped, the `reason` label of finance_exporter_skipped_values_total.
NULL = "null"
NOT_FINITE = "not_finite"
NEGATIVE = "negative"
NOT_NUMERIC = "not_numeric"
WRONG_TYPE = "wrong_type"
MISSING = "missing"
FUTURE_TIMESTAMP = "future_timestamp"
NULL_LABEL = "null_label"
SERIES_LIMIT = "series_limit"

# A tick stamped this far in the future is garbage, not clock skew.
FUTURE_TOLERANCE_SECONDS = 60.0
# The age of a key that does not exist: a provider that is configured but has never ticked (or
# whose key was deleted) is infinitely stale. Dropping its series instead would leave the
# staleness alert nothing to compare, and it would go quiet exactly when the feed is gone.
MISSING_AGE = Decimal("Infinity")


@dataclass(frozen=True)
class Shaped:
    """Values by label key, and how many values were skipped, by reason."""

    values: Mapping[Key, Values]
    skipped: Mapping[str, int] = field(default_factory=dict)


def to_decimal(raw: object, allow_negative: bool) -> Decimal | str:
    """Return `raw` as a finite Decimal, or the reason it cannot be a metric value."""
    if raw is None:
        return NULL
    if isinstance(raw, bool):
        return NOT_NUMERIC
    try:
        number = Decimal(raw) if isinstance(raw, (int, Decimal)) else Decimal(str(raw).strip())
    except (InvalidOperation, ValueError, TypeError):
        return NOT_NUMERIC
    if not number.is_finite():
        return NOT_FINITE
    if number < 0 and not allow_negative:
        return NEGATIVE
    return number


def shape_rows(
    metric: MetricSpec, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> Shaped:
    """Map rows to {label key: value columns}, summing duplicate keys and skipping bad values."""
    key_columns, value_columns = metric.key_columns(), metric.value_columns()
    _check_columns(metric, columns, (*key_columns, *value_columns))
    key_index = [columns.index(name) for name in key_columns]
    value_index = [columns.index(name) for name in value_columns]
    values: dict[Key, Values] = {}
    skipped: Counter[str] = Counter()
    for row in rows:
        key = tuple(_label(name, row[i]) for name, i in zip(key_columns, key_index, strict=True))
        if any(part is None for part in key):
            skipped[NULL_LABEL] += 1
            continue
        numbers = [to_decimal(row[i], metric.allow_negative) for i in value_index]
        bad = [n for n in numbers if isinstance(n, str)]
        if bad:
            skipped[bad[0]] += 1
            continue
        clean_key: Key = tuple(str(part) for part in key)
        previous = values.get(clean_key)
        row_values = tuple(n for n in numbers if isinstance(n, Decimal))
        values[clean_key] = row_values if previous is None else add_values(previous, row_values)
    return Shaped(values=values, skipped=dict(skipped))


def shape_redis(
    metric: MetricSpec, read: RedisRead, replies: Sequence[object], now: float
) -> Shaped:
    """Map one reply per label value to values; `mget_age` turns a Unix timestamp into an age,
    and a missing key into an infinite age (MISSING_AGE)."""
    values: dict[Key, Values] = {}
    skipped: Counter[str] = Counter()
    for label_value, reply in zip(read.label_values, replies, strict=True):
        if reply is None and read.command == "mget_age":
            values[(label_value,)] = (MISSING_AGE,)
            continue
        if reply is None:
            skipped[MISSING] += 1
            continue
        if not isinstance(reply, (str, int)):
            skipped[WRONG_TYPE] += 1
            continue
        number = to_decimal(reply, allow_negative=False)
        if isinstance(number, str):
            skipped[number] += 1
            continue
        if read.command == "mget_age":
            if float(number) > now + FUTURE_TOLERANCE_SECONDS:
                skipped[FUTURE_TIMESTAMP] += 1
                continue
            number = max(Decimal(repr(now)) - number, Decimal(0))
        values[(label_value,)] = (number,)
    return Shaped(values=values, skipped=dict(skipped))


def cap_series(
    shaped: Shaped, metric: MetricSpec, admitted: Mapping[Key, Values] | None = None
) -> Shaped:
    """Keep at most `metric.max_series` label sets: those already `admitted`, then new ones sorted.

    A histogram's rows are keyed by labels plus `le`; a series is the label set without it.
    """
    width = len(metric.labels)
    known = {key[:width] for key in admitted or {}}
    offered = {key[:width] for key in shaped.values}
    if len(known | offered) <= metric.max_series:
        return shaped
    room = max(metric.max_series - len(known), 0)
    new = sorted(offered - known)
    allowed = known | set(new[:room])
    skipped = Counter(shaped.skipped)
    skipped[SERIES_LIMIT] += len(new) - len(new[:room])
    kept = {key: values for key, values in shaped.values.items() if key[:width] in allowed}
    return Shaped(values=kept, skipped=dict(skipped))


def _label(name: str, raw: object) -> str | None:
    if name == BUCKET_COLUMN:
        # NULL bound: the value lies above every finite bucket.
        return "+Inf" if raw is None else format_float(float(str(raw)))
    if raw is None:
        return None
    return str(raw)


def add_values(left: Values, right: Values) -> Values:
    """Add two value tuples element by element."""
    return tuple(a + b for a, b in zip(left, right, strict=True))


def _check_columns(metric: MetricSpec, columns: Sequence[str], expected: Sequence[str]) -> None:
    if sorted(columns) != sorted(expected):
        raise SourceQueryError(
            f"query for {metric.name} returned columns {', '.join(sorted(columns)) or 'none'}; "
            f"expected {', '.join(sorted(expected))}"
        )


def format_float(value: float) -> str:
    """Format a number the way Prometheus writes bucket bounds (0.5, 1.0, +Inf)."""
    text: str = prometheus_utils.floatToGoString(value)  # type: ignore[no-untyped-call]
    return text
