"""How wide a first fold's next chunk is, in transaction ids, from what the last one cost.

- Each chunk aims at TARGET_CHUNK_SECONDS, or a quarter of its timeout if that is less: the next
  is wider or narrower by the ratio, at most GROWTH_LIMIT times. The ids below the first row are
  skipped by the same rule: an empty chunk is one index probe, and the next is GROWTH_LIMIT times
  wider, so an empty prefix of N ids costs about log8(N / INITIAL_SPAN) probes (6 for 5e9 ids),
  where a min(column) query would need to know the column.
- A chunk cancelled by its statement timeout is retried GROWTH_LIMIT times narrower, down to a
  single transaction id. One id can still hold a huge transaction (a bulk load): a single-id chunk
  that times out doubles the statement timeout instead, without bound, so the fold always
  finishes. The timeout starts at `backfill_timeout_seconds` (config.py), longer than a scrape's
  because nobody waits for it.
"""

from __future__ import annotations

INITIAL_SPAN = 65_536  # transaction ids in a fold's first chunk
GROWTH_LIMIT = 8  # a chunk is at most this many times wider or narrower than the previous
TARGET_CHUNK_SECONDS = 1.0  # what one chunk's statement should take


def next_span(span: int, elapsed_seconds: float, timeout_seconds: float) -> int:
    """The width after a chunk of `span` ids that took `elapsed_seconds`."""
    # Aim well inside the timeout too, so that a chunk grown from a fast one rarely hits it.
    target = min(TARGET_CHUNK_SECONDS, timeout_seconds / 4)
    factor = min(max(target / max(elapsed_seconds, 1e-3), 1 / GROWTH_LIMIT), GROWTH_LIMIT)
    return max(int(span * factor), 1)


def after_timeout(span: int, timeout_seconds: float) -> tuple[int, float]:
    """The width and timeout after a chunk of `span` ids hit its statement timeout."""
    if span > 1:
        return max(span // GROWTH_LIMIT, 1), timeout_seconds
    return span, timeout_seconds * 2
