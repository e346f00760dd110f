"""The trading side's model evaluation: every EVALUATION_INTERVAL_SECONDS, each model's accuracy
over its signals closed in the last EVALUATION_WINDOW_SECONDS, recorded in model_evaluations,
the table finance_prediction_accuracy_ratio (and so ModelAccuracyLow) reads its newest row of.

Accuracy is the share of the decided signals (success or failure; an expired signal predicted
nothing) that succeeded: 0.58 / 0.90 = 0.64 with the usual outcomes (trading.py), after the
seed's nightly history (0.58 to 0.74 per model). A model with fewer than MIN_DECIDED decided
signals in the window is not scored: a handful of signals is noise, not a measure.

Why 30 minutes: the default load closes about 190 decided signals per model in that time, where
a true 0.64 reads under ModelAccuracyLow's 0.55 in 0.3% of windows (the binomial tail at
z = 2.7), so a healthy model does not flap. When signals go wrong (the signal_accuracy fault
knob at 0) the score falls under 0.55 once 15% of the window is wrong, about 4.5 minutes, and
rises above it again about 25 minutes after they are right again, when the wrong ones have
left the window.
"""

from __future__ import annotations

import logging
import threading

from finance_demo.platform.datastores import DatastoreUnavailableError, PostgresPool
from finance_demo.platform.logs import current_service

logger = logging.getLogger(__name__)

EVALUATION_INTERVAL_SECONDS = 120.0
EVALUATION_WINDOW_SECONDS = 1800
MIN_DECIDED = 50

# One statement: every model with enough decided signals gets its row (signals_closed_at, a
# partial index of migration 007, keeps it a range scan however long the history).
EVALUATE = """
INSERT INTO model_evaluations (model, accuracy)
SELECT model, avg((outcome = 'success')::int)::float8
FROM signals
WHERE closed_at >= now() - make_interval(secs => %(window)s)
  AND outcome IN ('success', 'failure')
GROUP BY model
HAVING count(*) >= %(min_decided)s
RETURNING model, accuracy
"""


def evaluate_models(
    pool: PostgresPool,
    window_seconds: float = EVALUATION_WINDOW_SECONDS,
    min_decided: int = MIN_DECIDED,
) -> dict[str, float]:
    """Score every model on its recently closed signals; the accuracy recorded per model."""
    with pool.transaction() as conn:
        rows = conn.execute(
            EVALUATE, {"window": window_seconds, "min_decided": min_decided}
        ).fetchall()
    return {str(model): float(str(accuracy)) for model, accuracy in rows}


def run_evaluations(pool: PostgresPool, stop: threading.Event) -> None:
    """Evaluate the models every EVALUATION_INTERVAL_SECONDS until `stop`; outages are waited
    out."""
    current_service.set("trading")
    while not stop.wait(EVALUATION_INTERVAL_SECONDS):
        try:
            scored = evaluate_models(pool)
        except DatastoreUnavailableError:
            continue  # logged once by the pool; the next round retries
        except Exception:
            logger.exception("model evaluation failed")
            continue
        if scored:
            logger.debug("models evaluated", extra={"accuracy": scored})
