"""The first fold's chunk width: aimed at a second, bounded steps, and a fold that always ends."""

from __future__ import annotations

from finance_exporter.chunking import GROWTH_LIMIT, after_timeout, next_span


def test_a_fast_chunk_widens_the_next_at_most_growth_limit_times() -> None:
    assert next_span(1000, elapsed_seconds=0.0, timeout_seconds=30) == 1000 * GROWTH_LIMIT
    assert next_span(1000, elapsed_seconds=0.5, timeout_seconds=30) == 2000  # aims at 1 s


def test_a_slow_chunk_narrows_the_next_at_most_growth_limit_times_and_never_below_one() -> None:
    assert next_span(8000, elapsed_seconds=100.0, timeout_seconds=300) == 8000 // GROWTH_LIMIT
    assert next_span(4, elapsed_seconds=100.0, timeout_seconds=300) == 1


def test_a_short_timeout_aims_the_chunk_at_a_quarter_of_it() -> None:
    # 0.2 s timeout: aim at 0.05 s, so a chunk that took 0.1 s is halved, not kept.
    assert next_span(1000, elapsed_seconds=0.1, timeout_seconds=0.2) == 500


def test_a_timed_out_chunk_narrows_and_a_single_id_doubles_its_timeout_instead() -> None:
    assert after_timeout(800, 30.0) == (100, 30.0)
    assert after_timeout(5, 30.0) == (1, 30.0)
    assert after_timeout(1, 30.0) == (1, 60.0)
