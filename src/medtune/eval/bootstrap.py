"""Confidence intervals for accuracy by the percentile bootstrap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medtune.errors import MedtuneError


def bootstrap_interval(
    correct: Sequence[bool], n_resamples: int = 1000, seed: int = 42, level: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap interval for the mean of per-item 0/1 outcomes.

    Args:
        correct: one outcome per scored item (``True`` = answered correctly).
        n_resamples: how many resamples of ``len(correct)`` items, drawn with replacement.
        seed: fixes the resamples, so the same outcomes always give the same interval.
        level: the interval's coverage, e.g. ``0.95`` for the 2.5th to 97.5th percentiles.
    Returns:
        ``(low, high)`` accuracies.
    Raises:
        MedtuneError: no outcomes, fewer than one resample, or a level outside (0, 1).
    """
    if not correct:
        raise MedtuneError("Cannot compute a confidence interval over zero items; evaluate at least one question.")
    if n_resamples < 1 or not 0 < level < 1:
        raise MedtuneError(f"Bootstrap needs n_resamples >= 1 and 0 < level < 1 (got {n_resamples} and {level}).")
    outcomes = np.asarray(correct, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 100):  # chunks keep memory small for large test sets
        count = min(100, n_resamples - start)
        means[start : start + count] = outcomes[rng.integers(0, len(outcomes), size=(count, len(outcomes)))].mean(1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)
