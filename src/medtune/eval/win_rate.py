"""Win-rate of one model's answers over another's on the same prompts, with a bootstrap interval.

Per prompt, model B wins (its answer scored higher), ties or loses. The win-rate is the share of
prompts B wins; ties are counted and reported, not split. The interval is the percentile bootstrap
of that share, and the paired mean score difference (B minus A) is tested by the paired bootstrap
of :mod:`medtune.eval.significance` (pointwise judges). With a pairwise judge each prompt has a
verdict instead of two scores (:func:`pairwise_win_rate`).
"""

from __future__ import annotations

from collections.abc import Sequence

from medtune.errors import MedtuneError
from medtune.eval.significance import bootstrap_interval, paired_mean_delta

TIE_TOLERANCE = 1e-9  # scores this close are a tie (judges round their scores)


def _outcome_figures(outcomes: Sequence[int], n_resamples: int, seed: int) -> dict:
    """Figures of per-prompt outcomes in prompt order: 1 = B wins, 0 = tie, -1 = B loses."""
    n, wins, losses = len(outcomes), outcomes.count(1), outcomes.count(-1)
    ties = n - wins - losses
    low, high = bootstrap_interval([o == 1 for o in outcomes], n_resamples, seed)
    return {
        "n": n,
        "wins": wins,
        "ties": ties,
        "losses": losses,
        "win_rate": round(wins / n, 4),
        "tie_rate": round(ties / n, 4),
        "loss_rate": round(losses / n, 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        # the share B wins when a tie counts half: 0.5 means no difference
        "win_rate_ties_half": round((wins + 0.5 * ties) / n, 4),
    }


def pointwise_win_rate(
    scores_a: Sequence[float], scores_b: Sequence[float], n_resamples: int = 1000, seed: int = 42
) -> dict:
    """B against A from per-prompt judge scores (the same prompts, in the same order).

    Returns:
        ``n, wins, ties, losses, win_rate, tie_rate, loss_rate, ci_low, ci_high`` (95% bootstrap
        interval of the win-rate), ``win_rate_ties_half``, ``mean_score_a``, ``mean_score_b`` and
        ``score_delta`` (paired bootstrap of mean(B) - mean(A): value, interval, p-value).
    Raises:
        MedtuneError: different lengths or no prompts.
    """
    if len(scores_a) != len(scores_b) or not scores_a:
        raise MedtuneError(
            f"A win-rate needs both models' scores on the same prompts (got {len(scores_a)} and {len(scores_b)})."
        )
    outcomes = [(b - a > TIE_TOLERANCE) - (a - b > TIE_TOLERANCE) for a, b in zip(scores_a, scores_b, strict=True)]
    figures = _outcome_figures(outcomes, n_resamples, seed)
    figures["mean_score_a"] = round(sum(scores_a) / len(scores_a), 4)
    figures["mean_score_b"] = round(sum(scores_b) / len(scores_b), 4)
    figures["score_delta"] = paired_mean_delta(scores_a, scores_b, n_resamples, seed).to_dict()
    return figures


def pairwise_win_rate(
    winners: Sequence[str], consistent: Sequence[bool], n_resamples: int = 1000, seed: int = 42
) -> dict:
    """B against A from pairwise verdicts asked in both orders (``"first"`` = A, ``"second"`` = B, ``"tie"``).

    An order-inconsistent verdict is already a tie; ``position_consistency`` is the share of
    verdicts whose two orders agreed.

    Raises:
        MedtuneError: no verdicts, lengths differ, or a winner other than first/second/tie.
    """
    if not winners or len(winners) != len(consistent):
        raise MedtuneError(f"A win-rate needs one verdict per prompt (got {len(winners)} and {len(consistent)}).")
    unknown = sorted(set(winners) - {"first", "second", "tie"})
    if unknown:
        raise MedtuneError(f"Unknown pairwise verdict(s) {unknown}; expected first, second or tie.")
    figures = _outcome_figures([{"second": 1, "tie": 0, "first": -1}[w] for w in winners], n_resamples, seed)
    figures["position_consistency"] = round(sum(consistent) / len(consistent), 4)
    return figures
