"""How well judge scores agree with preferences and human scores: pairwise accuracy, Spearman, Pearson.

Intervals are percentile bootstraps over the same resamples as every other medtune statistic
(:mod:`medtune.eval.significance`, seed 42, 1000 resamples).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
from scipy import stats

from medtune.eval.significance import LEVEL, bootstrap_interval, resample_indices


def pairwise_accuracy(
    preferred: Sequence[float], other: Sequence[float], n_resamples: int = 1000, seed: int = 42
) -> dict:
    """The share of pairs where the preferred answer scores strictly higher, with its bootstrap interval.

    Returns:
        ``{"pairwise_accuracy", "ci_low", "ci_high", "ties", "pairs"}`` (accuracy ``None`` when there are no pairs).
    """
    outcomes = [p > o for p, o in zip(preferred, other, strict=True)]
    ties = sum(p == o for p, o in zip(preferred, other, strict=True))
    if not outcomes:
        return {"pairwise_accuracy": None, "ci_low": None, "ci_high": None, "ties": 0, "pairs": 0}
    low, high = bootstrap_interval(outcomes, n_resamples=n_resamples, seed=seed)
    return {
        "pairwise_accuracy": sum(outcomes) / len(outcomes),
        "ci_low": low,
        "ci_high": high,
        "ties": ties,
        "pairs": len(outcomes),
    }


def _correlation_interval(
    x: np.ndarray, y: np.ndarray, method, n_resamples: int, seed: int
) -> tuple[float | None, float | None]:
    values = []
    for chunk in resample_indices(len(x), n_resamples, seed):
        for indices in chunk:
            xs, ys = x[indices], y[indices]
            if np.ptp(xs) == 0 or np.ptp(ys) == 0:
                continue  # a resample with a constant column has no correlation
            values.append(method(xs, ys).statistic)
    if not values:
        return None, None
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def correlation(judge: Sequence[float], human: Sequence[float], n_resamples: int = 1000, seed: int = 42) -> dict:
    """Spearman and Pearson correlation of judge with human scores, each with a bootstrap interval.

    Returns:
        ``{"n", "spearman", "spearman_ci_low", "spearman_ci_high", "pearson", ...}``; ``None`` values
        when fewer than 3 items or a constant column make a correlation undefined.
    """
    x, y = np.asarray(judge, dtype=np.float64), np.asarray(human, dtype=np.float64)
    result: dict = {"n": len(x)}
    for name, method in (("spearman", stats.spearmanr), ("pearson", stats.pearsonr)):
        if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            result |= {name: None, f"{name}_ci_low": None, f"{name}_ci_high": None}
            continue
        low, high = _correlation_interval(x, y, method, n_resamples, seed)
        result |= {name: float(method(x, y).statistic), f"{name}_ci_low": low, f"{name}_ci_high": high}
    return result


def same_prompt_pairs(prompts: Sequence[str], human: Sequence[float]) -> list[tuple[int, int]]:
    """Index pairs ``(better, worse)`` of answers to the same prompt whose human scores differ."""
    pairs = []
    for i, j in combinations(range(len(prompts)), 2):
        if prompts[i] == prompts[j] and human[i] != human[j]:
            pairs.append((i, j) if human[i] > human[j] else (j, i))
    return pairs
