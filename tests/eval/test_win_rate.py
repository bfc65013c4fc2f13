"""Win-rate of one model's answers over another's: counts by hand, intervals from the significance module."""

from __future__ import annotations

import pytest

from medtune.errors import MedtuneError
from medtune.eval.significance import bootstrap_interval, paired_mean_delta
from medtune.eval.win_rate import pairwise_win_rate, pointwise_win_rate

SFT = [0.2, 0.5, 0.5, 0.9, 0.0]
DPO = [0.4, 0.5, 0.1, 0.95, 1.0]  # wins, tie, loss, win, win


def test_pointwise_counts_shares_and_ties():
    w = pointwise_win_rate(SFT, DPO, seed=7)
    assert (w["n"], w["wins"], w["ties"], w["losses"]) == (5, 3, 1, 1)
    assert (w["win_rate"], w["tie_rate"], w["loss_rate"]) == (0.6, 0.2, 0.2)
    assert w["win_rate_ties_half"] == 0.7  # (3 + 0.5) / 5
    assert (w["mean_score_a"], w["mean_score_b"]) == (0.42, 0.59)


def test_pointwise_intervals_come_from_the_significance_module():
    w = pointwise_win_rate(SFT, DPO, n_resamples=500, seed=7)
    low, high = bootstrap_interval([True, False, False, True, True], 500, 7)  # per prompt, in prompt order
    assert (w["ci_low"], w["ci_high"]) == (round(low, 4), round(high, 4))
    assert w["score_delta"] == paired_mean_delta(SFT, DPO, 500, 7).to_dict()
    assert w["score_delta"]["value"] == pytest.approx(0.17)


def test_scores_within_rounding_are_a_tie():
    w = pointwise_win_rate([0.3, 0.7], [0.3 + 1e-12, 0.7])
    assert (w["wins"], w["ties"], w["losses"]) == (0, 2, 0)


def test_pairwise_verdicts_and_position_consistency():
    w = pairwise_win_rate(["second", "tie", "first", "second"], [True, False, True, True], seed=3)
    assert (w["wins"], w["ties"], w["losses"], w["win_rate"]) == (2, 1, 1, 0.5)
    assert w["position_consistency"] == 0.75
    low, high = bootstrap_interval([True, False, False, True], 1000, 3)
    assert (w["ci_low"], w["ci_high"]) == (round(low, 4), round(high, 4))


@pytest.mark.parametrize(
    "call",
    [
        lambda: pointwise_win_rate([0.1], [0.2, 0.3]),
        lambda: pointwise_win_rate([], []),
        lambda: pairwise_win_rate(["second", "A"], [True, True]),
        lambda: pairwise_win_rate([], []),
    ],
)
def test_bad_inputs_are_user_errors(call):
    with pytest.raises(MedtuneError):
        call()
