"""What a set of judgments says: counts, score distribution, reviewer throughput, agreement and effort.

Agreement is Krippendorff's alpha (interval level; equal to the ``krippendorff`` package's) on the
items judged more than once; effort is HTER, sacreBLEU's TER of the machine output against the reviewer's
post-edit, as translation tools report it. Both intervals are percentile bootstraps over items (or
post-edits) drawn by :func:`medtune.eval.significance.resample_indices`, like every medtune interval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from medtune.eval.significance import _percentile_interval, resampled_sums

if TYPE_CHECKING:
    from medtune.feedback.store import JudgmentView

HISTOGRAM_BINS = 10
# Below this sum of squared deviations every score is the same value (up to rounding): alpha is 1.
SAME_SCORES = 1e-12


def feedback_stats(judgments: Sequence[JudgmentView], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Summarise judgments as plain JSON values (the ``stats`` command and the run report show them).

    Args:
        judgments: from :meth:`FeedbackStore.judgments`, of one project or several.
        bootstrap: resamples for the agreement and effort intervals (95% percentile intervals).
        seed: fixes the resamples, so the same judgments always give the same intervals.
    Returns:
        ``items``, ``judgments``, ``reviewers``, ``simulated_judgments``, ``score_mean`` (None when
        empty), ``score_histogram`` (counts in 10 equal bins over [0, 1], the last bin closed),
        ``per_reviewer`` (``reviewer``, ``simulated``, ``judgments``, ``seconds`` timed in all,
        ``judgments_per_hour`` over the timed judgments or None), ``agreement`` (see
        :func:`score_agreement`), ``effort`` (see :func:`post_edit_effort`) and ``seconds_per_word``
        (time spent per source word over the timed judgments, or None).
    """
    scores = [j.score for j in judgments]
    histogram, _ = np.histogram(scores, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    timed = [j for j in judgments if j.seconds is not None]
    timed_words = sum(len(j.source.split()) for j in timed)
    return {
        "items": len({j.item_id for j in judgments}),
        "judgments": len(judgments),
        "reviewers": len({j.reviewer for j in judgments}),
        "simulated_judgments": sum(j.simulated for j in judgments),
        "score_mean": float(np.mean(scores)) if scores else None,
        "score_histogram": [int(count) for count in histogram],
        "per_reviewer": reviewer_throughput(judgments),
        "agreement": score_agreement(judgments, bootstrap=bootstrap, seed=seed),
        "effort": post_edit_effort(judgments, bootstrap=bootstrap, seed=seed),
        "seconds_per_word": sum(j.seconds for j in timed) / timed_words if timed_words else None,
    }


def reviewer_throughput(judgments: Sequence[JudgmentView]) -> list[dict]:
    """One row per reviewer (by name): judgments, seconds timed, judgments per hour of timed work.

    Judgments without a recorded time (imports, the simulated reviewer) count as judgments but not
    towards the rate, so an untimed reviewer's rate is None rather than infinite.
    """
    by_reviewer: dict[str, list[JudgmentView]] = defaultdict(list)
    for judgment in judgments:
        by_reviewer[judgment.reviewer].append(judgment)
    rows = []
    for name in sorted(by_reviewer):
        own = by_reviewer[name]
        timed = [j.seconds for j in own if j.seconds is not None]
        seconds = float(sum(timed))
        rows.append(
            {
                "reviewer": name,
                "simulated": any(j.simulated for j in own),
                "judgments": len(own),
                "seconds": seconds,
                "judgments_per_hour": len(timed) / seconds * 3600 if seconds > 0 else None,
            }
        )
    return rows


def score_agreement(judgments: Sequence[JudgmentView], *, bootstrap: int = 1000, seed: int = 0) -> dict | None:
    """Krippendorff's alpha (interval) of the scores on items judged more than once, with a bootstrap interval.

    Alpha depends only on the scores within each item, not on who gave which, so every item with two
    or more judgments is one unit whatever its reviewers. When every score in a sample is the same
    value, alpha is 0/0; that is complete agreement, reported as 1.

    Returns:
        ``{"alpha", "ci_low", "ci_high", "items"}`` (items: how many were judged more than once), or
        None when no item was judged more than once.
    """
    by_item: dict[str, list[float]] = defaultdict(list)
    for judgment in judgments:
        by_item[judgment.item_id].append(judgment.score)
    units = [np.asarray(scores, dtype=np.float64) for _, scores in sorted(by_item.items()) if len(scores) > 1]
    if not units:
        return None
    # Why not krippendorff.alpha: it builds units x V x V arrays over the V distinct scores (25.8 GiB for 1,000
    # items with 1,860 distinct slider/chrF++ scores). For the interval metric alpha reduces to sums of squares
    # (below), equal to the package's value (tests/feedback/test_stats.py checks it against the package).
    centre = float(np.concatenate(units).mean())  # alpha is shift-invariant; centring keeps the squares exact
    unit_sums = np.array([_unit_sums(unit - centre) for unit in units])
    alpha = float(_alpha_from_sums(unit_sums.sum(axis=0)[None])[0])
    low, high = _percentile_interval(_alpha_from_sums(resampled_sums(unit_sums, bootstrap, seed)))
    return {"alpha": alpha, "ci_low": low, "ci_high": high, "items": len(units)}


def _unit_sums(scores: np.ndarray) -> tuple[float, float, float, float]:
    """What one unit adds to alpha's sums: m SS/(m-1) (its within-unit disagreement), m, the sum, the sum of squares."""
    m = len(scores)
    within = m * float(((scores - scores.mean()) ** 2).sum()) / (m - 1)
    return within, m, float(scores.sum()), float((scores**2).sum())


def _alpha_from_sums(sums: np.ndarray) -> np.ndarray:
    """Interval alpha from summed unit statistics (one row per sample).

    With n pairable values, observed disagreement D_o = (1/n) sum_u m_u SS_u / (m_u - 1) x 2 and expected
    D_e = 2 SS / (n - 1) (SS: squares about the mean of all n values), so alpha = 1 - (n - 1) W / (n SS).
    """
    within, n, total, squares = sums.T
    spread = squares - total**2 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1 - (n - 1) * within / (n * spread)
    return np.where(spread > SAME_SCORES, alpha, 1.0)


def post_edit_effort(judgments: Sequence[JudgmentView], *, bootstrap: int = 1000, seed: int = 0) -> dict:
    """HTER: mean sentence TER of the machine output against its post-edit, with a bootstrap interval.

    Only judgments with a non-empty post-edit count; an unchanged post-edit costs 0. TER is
    sacreBLEU's, case-sensitive (a corrected capital is an edit a reviewer made) and reported as a
    fraction (edits per post-edit word), like the scores.

    Returns:
        ``{"hter_mean", "ci_low", "ci_high", "post_edits"}``; the figures are None without post-edits.
    """
    edited = [j for j in judgments if j.post_edit and j.post_edit.strip()]
    if not edited:
        return {"hter_mean": None, "ci_low": None, "ci_high": None, "post_edits": 0}
    values = np.asarray([hter(j.translation, j.post_edit) for j in edited])
    low, high = _percentile_interval(resampled_sums(values, bootstrap, seed)[:, 0] / len(values))
    return {"hter_mean": float(values.mean()), "ci_low": low, "ci_high": high, "post_edits": len(edited)}


def hter(translation: str, post_edit: str) -> float:
    """TER of ``translation`` with ``post_edit`` as its reference, as a fraction (sacreBLEU, case-sensitive)."""
    return _case_sensitive_ter().sentence_score(translation, [post_edit]).score / 100


@cache
def _case_sensitive_ter():
    from sacrebleu.metrics import TER

    return TER(case_sensitive=True)
