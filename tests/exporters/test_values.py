"""Value validation and the series budget (pure functions)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from finance_exporter.aggregate import Totals, apply
from finance_exporter.spec import MetricSpec, RedisRead
from finance_exporter.values import Shaped, cap_series, shape_redis, to_decimal

GAUGE = MetricSpec(name="finance_x", kind="gauge", help="x", labels=("tier",), max_series=2)
AGE = MetricSpec(
    name="finance_age_seconds", kind="gauge", help="a", labels=("provider",), max_series=2
)
HISTOGRAM = MetricSpec(
    name="finance_h_seconds",
    kind="histogram",
    help="h",
    labels=("strategy",),
    max_series=1,
    buckets=(0.5, 1.0),
)


@pytest.mark.parametrize(
    ("raw", "allow_negative", "expected"),
    [
        (None, False, "null"),
        ("abc", False, "not_numeric"),
        (True, False, "not_numeric"),
        (float("nan"), False, "not_finite"),
        ("inf", False, "not_finite"),
        (-1, False, "negative"),
        (-1, True, Decimal(-1)),
        (" 12.50 ", False, Decimal("12.50")),
        (0.1, False, Decimal("0.1")),
    ],
)
def test_to_decimal_accepts_finite_numbers_and_names_what_it_rejects(
    raw: object, allow_negative: bool, expected: object
) -> None:
    assert to_decimal(raw, allow_negative) == expected


def test_series_over_budget_are_dropped_in_sorted_order_and_counted() -> None:
    shaped = Shaped(values={("c",): (Decimal(3),), ("a",): (Decimal(1),), ("b",): (Decimal(2),)})
    capped = cap_series(shaped, GAUGE)
    assert capped.values == {("a",): (Decimal(1),), ("b",): (Decimal(2),)}
    assert capped.skipped == {"series_limit": 1}


def test_counted_series_keep_their_place_when_new_ones_arrive() -> None:
    totals = Totals(watermark=10, values={("z",): (Decimal(5),), ("y",): (Decimal(1),)})
    fold = apply(totals, Shaped(values={("a",): (Decimal(1),), ("z",): (Decimal(2),)}), 20, GAUGE)
    assert fold.totals == Totals(
        watermark=20, values={("z",): (Decimal(7),), ("y",): (Decimal(1),)}
    )
    assert fold.skipped == {"series_limit": 1}


def test_a_histogram_series_is_its_label_set_not_each_bucket() -> None:
    rows = {
        ("momentum", "0.5"): (Decimal(2), Decimal("0.4")),
        ("momentum", "1.0"): (Decimal(1), Decimal("0.9")),
        ("momentum", "+Inf"): (Decimal(1), Decimal(7)),
        ("breakout", "0.5"): (Decimal(1), Decimal("0.2")),
    }
    capped = cap_series(Shaped(values=rows), HISTOGRAM)
    assert set(capped.values) == {("breakout", "0.5")}
    assert capped.skipped == {"series_limit": 1}


def test_the_watermark_never_moves_back() -> None:
    with pytest.raises(ValueError, match="cannot move back"):
        apply(Totals(watermark=10), Shaped(values={}), 9, GAUGE)


def test_a_missing_tick_key_is_an_infinite_age_not_a_dropped_series() -> None:
    read = RedisRead(command="mget_age", key_template="md:last_tick:{}", label_values=("a", "b"))
    shaped = shape_redis(AGE, read, [None, "990.5"], now=1000.0)
    assert shaped.values == {("a",): (Decimal("Infinity"),), ("b",): (Decimal("9.5"),)}
    assert shaped.skipped == {}


def test_a_missing_key_of_a_count_is_still_skipped_as_missing() -> None:
    read = RedisRead(command="llen", key_template="q:{}", label_values=("a",))
    assert shape_redis(GAUGE, read, [None], now=1000.0).skipped == {"missing": 1}
