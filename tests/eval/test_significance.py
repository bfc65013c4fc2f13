"""medtune.eval.significance: bootstrap intervals and paired tests, checked against hand-computed
cases, closed forms, a plain-Python oracle over the same resamples, and sacreBLEU's own paired bootstrap."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from sacrebleu.significance import PairedTest, _compute_p_value, estimate_ci
from scipy.stats import binom

import medtune.eval.significance as significance
from medtune.data.demo import DEMO_DIR
from medtune.errors import MedtuneError
from medtune.eval.metrics import corpus_scores, translation_metrics
from medtune.eval.significance import (
    PairedDelta,
    bootstrap_interval,
    paired_mean_delta,
    paired_perplexity_delta,
    paired_translation_deltas,
    resample_indices,
    resampled_sums,
    resampled_translation_scores,
)

SACREBLEU_SEED = 12345  # sacreBLEU's default SACREBLEU_SEED


def all_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.concatenate(list(resample_indices(n, n_resamples, seed)))


def oracle_p_value(observed: float, resampled: list[float]) -> float:
    """The documented rule, written out: two-sided, resampled deltas centred on the observed one."""
    extreme = sum(abs(d - observed) >= abs(observed) - 1e-9 * max(1.0, abs(observed)) for d in resampled)
    return (extreme + 1) / (len(resampled) + 1)


# --- the resampling scheme ------------------------------------------------------------------


def test_resample_indices_are_sacrebleus_draw_whatever_the_chunking(monkeypatch):
    expected = np.random.default_rng(SACREBLEU_SEED).choice(37, size=(500, 37), replace=True)
    assert np.array_equal(all_indices(37, 500, SACREBLEU_SEED), expected)
    monkeypatch.setattr(significance, "_CELLS_PER_CHUNK", 37 * 7)  # chunks of 7 rows, last one shorter
    assert len(list(resample_indices(37, 500, SACREBLEU_SEED))) == math.ceil(500 / 7)
    assert np.array_equal(all_indices(37, 500, SACREBLEU_SEED), expected)


def test_resampled_sums_equal_summing_the_drawn_rows():
    stats = np.arange(24, dtype=float).reshape(8, 3) ** 1.5
    indices = all_indices(8, 50, 3)
    assert np.allclose(resampled_sums(stats, 50, 3), stats[indices].sum(1), rtol=1e-12)


# --- paired_mean_delta ----------------------------------------------------------------------


def test_paired_mean_delta_hand_computed_two_items():
    # Differences (b - a) are [1, 0]: a resample mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4.
    delta = paired_mean_delta([0, 0], [1, 0], n_resamples=1000, seed=5)
    assert delta.value == 0.5
    # 0 and 1 each carry 25% of the mass, far beyond the 2.5% tails, so the percentiles are the ends.
    assert (delta.ci_low, delta.ci_high) == (0.0, 1.0)
    assert not delta.significant
    # |d* - 0.5| >= 0.5 exactly when d* is 0 or 1: p -> 1/2. Its Monte-Carlo standard deviation at
    # 1000 resamples is sqrt(0.25 / 1000) = 0.016; 4 of them bound it.
    assert abs(delta.p_value - 0.5) < 0.064
    # And exactly: count the resamples whose two draws agree (mean 0 or 1).
    indices = all_indices(2, 1000, 5)
    agree = int(np.sum(indices[:, 0] == indices[:, 1]))
    assert delta.p_value == (agree + 1) / 1001
    assert (delta.n, delta.n_resamples, delta.seed) == (2, 1000, 5)


def test_paired_mean_delta_degenerate_cases_have_closed_forms():
    better = paired_mean_delta([0] * 10, [1] * 10, n_resamples=200)
    assert (better.value, better.ci_low, better.ci_high) == (1.0, 1.0, 1.0)
    assert better.p_value == 1 / 201 and better.significant
    same = paired_mean_delta([1, 0, 1, 1], [1, 0, 1, 1], n_resamples=200)
    assert (same.value, same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert not same.significant


def test_paired_mean_delta_interval_is_the_binomial_quantiles():
    # b is right where a is wrong on 30 of 100 items, equal elsewhere: a resample's delta is
    # Binomial(100, 0.3) / 100, whose 2.5% and 97.5% quantiles are 0.21 and 0.39.
    a = [0] * 100
    b = [1] * 30 + [0] * 70
    delta = paired_mean_delta(a, b, n_resamples=2000, seed=11)
    low, high = binom.ppf([0.025, 0.975], 100, 0.3) / 100
    # Monte-Carlo error of a tail percentile at 2000 resamples is within one step (1 item = 0.01).
    assert abs(delta.ci_low - low) <= 0.0101 and abs(delta.ci_high - high) <= 0.0101
    # Under the shifted null the delta would need to reach 0 or 0.6: P is about 1e-9, so p = 1/(R+1).
    assert delta.p_value == 1 / 2001 and delta.significant


def test_paired_mean_delta_equals_a_plain_python_oracle_over_the_same_resamples():
    rng = random.Random(0)
    a = [rng.random() < 0.55 for _ in range(60)]
    b = [rng.random() < 0.62 for _ in range(60)]
    delta = paired_mean_delta(a, b, n_resamples=500, seed=9)
    resampled = [sum(int(b[i]) - int(a[i]) for i in row) / 60 for row in all_indices(60, 500, 9).tolist()]
    observed = (sum(b) - sum(a)) / 60
    assert delta.value == pytest.approx(observed, abs=1e-15)
    assert delta.ci_low == pytest.approx(float(np.percentile(resampled, 2.5)), abs=1e-12)
    assert delta.ci_high == pytest.approx(float(np.percentile(resampled, 97.5)), abs=1e-12)
    assert delta.p_value == oracle_p_value(observed, resampled)
    assert delta.significant == (delta.ci_low > 0 or delta.ci_high < 0)


def test_bad_inputs_are_user_errors():
    with pytest.raises(MedtuneError, match="different lengths"):
        paired_mean_delta([1, 0], [1])
    with pytest.raises(MedtuneError, match="zero items"):
        paired_mean_delta([], [])
    with pytest.raises(MedtuneError, match="at least one resample"):
        paired_mean_delta([1], [0], n_resamples=0)
    with pytest.raises(MedtuneError, match="different lengths"):
        paired_translation_deltas(["a"], ["a", "b"], ["a"])
    with pytest.raises(MedtuneError, match="no predicted tokens"):
        paired_perplexity_delta([0.0], [0.0], [0])


def test_to_dict_holds_the_interface_fields():
    delta = PairedDelta(value=-1.5, ci_low=-2.0, ci_high=-0.5, p_value=0.01, n=10, n_resamples=1000, seed=42)
    assert delta.to_dict() == {
        "value": -1.5,
        "ci_low": -2.0,
        "ci_high": -0.5,
        "p_value": 0.01,
        "significant": True,
        "n": 10,
        "n_resamples": 1000,
        "seed": 42,
    }
    json.dumps(delta.to_dict())  # plain JSON values, no numpy scalars


# --- paired_perplexity_delta ----------------------------------------------------------------


def test_paired_perplexity_delta_equals_a_plain_python_oracle():
    tokens = [12, 40, 7, 25, 3, 18]
    nll_a = [2.1 * t for t in tokens]
    nll_b = [v - 0.3 * t + (0.5 if i % 2 else -0.4) for i, (v, t) in enumerate(zip(nll_a, tokens, strict=True))]
    delta = paired_perplexity_delta(nll_a, nll_b, tokens, n_resamples=400, seed=1)

    def perplexity(nll: list[float], rows: list[int]) -> float:
        return math.exp(sum(nll[i] for i in rows) / sum(tokens[i] for i in rows))

    everything = list(range(len(tokens)))
    observed = perplexity(nll_b, everything) - perplexity(nll_a, everything)
    resampled = [perplexity(nll_b, row) - perplexity(nll_a, row) for row in all_indices(6, 400, 1).tolist()]
    assert observed < 0  # B predicts better: its perplexity is lower
    assert delta.value == pytest.approx(observed, rel=1e-12)
    assert delta.ci_low == pytest.approx(float(np.percentile(resampled, 2.5)), rel=1e-9)
    assert delta.ci_high == pytest.approx(float(np.percentile(resampled, 97.5)), rel=1e-9)
    assert delta.p_value == oracle_p_value(observed, resampled)


def test_paired_perplexity_delta_of_identical_systems_is_zero_and_not_significant():
    delta = paired_perplexity_delta([3.0, 9.0, 1.0], [3.0, 9.0, 1.0], [2, 5, 1], n_resamples=100)
    assert (delta.value, delta.ci_low, delta.ci_high, delta.p_value) == (0.0, 0.0, 0.0, 1.0)


# --- translation, against sacreBLEU ---------------------------------------------------------


def _demo_systems(n: int = 120) -> tuple[list[str], list[str], list[str]]:
    """References from the bundled corpus and two systems that drop words at similar rates."""
    lines = (DEMO_DIR / "medical_en_es.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    refs = [json.loads(line)["es"] for line in lines]
    rng = random.Random(3)

    def drop_words(sentence: str, rate: float) -> str:
        return " ".join(w for w in sentence.split() if rng.random() > rate)

    return [drop_words(r, 0.11) for r in refs], [drop_words(r, 0.10) for r in refs], refs


def test_translation_scores_and_resamples_equal_sacrebleus_paired_bootstrap():
    hyps_a, hyps_b, refs = _demo_systems()
    ours = paired_translation_deltas(hyps_a, hyps_b, refs, n_resamples=1000, seed=SACREBLEU_SEED)
    scores_a = resampled_translation_scores(hyps_a, refs, 1000, SACREBLEU_SEED)
    scores_b = resampled_translation_scores(hyps_b, refs, 1000, SACREBLEU_SEED)
    _, theirs = PairedTest([("a", hyps_a), ("b", hyps_b)], translation_metrics(), [refs], test_type="bs")()
    for name, key in (("bleu", "BLEU"), ("chrf", "chrF2++"), ("ter", "TER")):
        baseline, system = theirs[key]
        # Observed scores and their delta: the same computation, so exactly equal.
        assert (scores_a[name].observed, scores_b[name].observed) == (baseline.score, system.score)
        assert ours[name].value == system.score - baseline.score
        # Same resamples: sacreBLEU's p-value rule applied to our resampled deltas gives its p-value
        # exactly, and its mean/interval of system B from our resamples agrees to 1e-4 points
        # (sacreBLEU sums the statistics in float32; the sums are exact integers either way, only
        # its arithmetic on them rounds at float32's 1e-7 relative precision).
        folded = np.abs(scores_b[name].resamples - scores_a[name].resamples)
        assert _compute_p_value(folded - folded.mean(), abs(ours[name].value)) == system.p_value
        mean, half_width = estimate_ci(scores_b[name].resamples)
        assert mean == pytest.approx(system.mean, abs=1e-4) and half_width == pytest.approx(system.ci, abs=1e-4)
        # Our interval and p-value are the documented rules on those same resampled deltas.
        deltas = (scores_b[name].resamples - scores_a[name].resamples).tolist()
        assert ours[name].ci_low == pytest.approx(float(np.percentile(deltas, 2.5)), abs=1e-12)
        assert ours[name].ci_high == pytest.approx(float(np.percentile(deltas, 97.5)), abs=1e-12)
        assert ours[name].p_value == oracle_p_value(ours[name].value, deltas)
    # The two systems are close: the test must not be trivially at its floor.
    assert 0.05 < ours["chrf"].p_value < 0.95 and 0.05 < theirs["chrF2++"][1].p_value < 0.95


def test_translation_observed_scores_equal_corpus_scores():
    hyps_a, _, refs = _demo_systems(40)
    scores = resampled_translation_scores(hyps_a, refs, n_resamples=10)
    reported = corpus_scores(hyps_a, refs)
    assert {name: round(s.observed, 4) for name, s in scores.items()} == {
        k: reported[k] for k in ("bleu", "chrf", "ter")
    }


def test_translation_identical_systems_and_a_perfect_one():
    hyps_a, _, refs = _demo_systems(40)
    same = paired_translation_deltas(hyps_a, hyps_a, refs, n_resamples=100)
    assert all((d.value, d.ci_low, d.ci_high, d.p_value) == (0.0, 0.0, 0.0, 1.0) for d in same.values())
    perfect = paired_translation_deltas(hyps_a, refs, refs, n_resamples=100)
    assert perfect["chrf"].ci_low > 0 and perfect["bleu"].ci_low > 0 and perfect["ter"].ci_high < 0
    assert all(d.significant and d.p_value == 1 / 101 for d in perfect.values())


# --- one system's interval ------------------------------------------------------------------


def test_bootstrap_interval_contains_accuracy_and_is_reproducible():
    outcomes = [True] * 30 + [False] * 20
    low, high = bootstrap_interval(outcomes, 1000, seed=7)
    assert low < 0.6 < high
    assert (low, high) == bootstrap_interval(outcomes, 1000, seed=7)
    assert (low, high) != bootstrap_interval(outcomes, 1000, seed=8)
    # binomial standard error at n=50 is 0.069, so the 95% interval is about +-0.136
    assert 0.2 < high - low < 0.35
    # The resample means are Binomial(50, 0.6) / 50: its quantiles within one step (1 item = 0.02).
    assert abs(low - binom.ppf(0.025, 50, 0.6) / 50) <= 0.0201
    assert abs(high - binom.ppf(0.975, 50, 0.6) / 50) <= 0.0201


def test_bootstrap_interval_shrinks_with_more_items():
    small = bootstrap_interval([True, False] * 20, 1000, seed=1)
    large = bootstrap_interval([True, False] * 2000, 1000, seed=1)
    assert large[1] - large[0] < (small[1] - small[0]) / 5  # width falls like 1/sqrt(n): 10x here
    assert bootstrap_interval([True] * 10, 100, seed=1) == (1.0, 1.0)
    with pytest.raises(MedtuneError):
        bootstrap_interval([], 100)


def test_translation_score_intervals_are_percentiles_of_the_paired_tests_resamples():
    from medtune.eval.significance import resampled_translation_scores, translation_score_intervals

    hyps = ["el paciente toma la dosis", "la fiebre bajó", "tome dos comprimidos", "sin dolor"]
    refs = ["el paciente toma una dosis", "la fiebre ha bajado", "tome dos comprimidos al día", "no tiene dolor"]
    intervals = translation_score_intervals(hyps, refs, n_resamples=200, seed=5)
    resampled = resampled_translation_scores(hyps, refs, n_resamples=200, seed=5)
    for name in ("bleu", "chrf", "ter"):
        expected = np.percentile(resampled[name].resamples, [2.5, 97.5])
        assert intervals[name] == (pytest.approx(expected[0]), pytest.approx(expected[1]))
        assert intervals[name][0] <= resampled[name].observed <= intervals[name][1]
