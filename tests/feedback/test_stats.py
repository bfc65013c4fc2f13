"""feedback_stats: counts, histogram, throughput by hand; alpha and HTER against their libraries; intervals re-derived."""

from __future__ import annotations

from datetime import UTC, datetime

import krippendorff
import numpy as np
import pytest
from sacrebleu.metrics import TER

from medtune.feedback.stats import feedback_stats, hter, post_edit_effort, score_agreement
from medtune.feedback.store import JudgmentView

_next_id = iter(range(1, 10_000))


def judgment(
    item_id: str,
    score: float,
    reviewer: str = "ana",
    *,
    source: str = "the patient is stable",
    translation: str = "el paciente está estable",
    post_edit: str | None = None,
    seconds: float | None = None,
    simulated: bool = False,
) -> JudgmentView:
    return JudgmentView(
        id=next(_next_id),
        item_id=item_id,
        project="p",
        reviewer=reviewer,
        simulated=simulated,
        imported=False,
        score=score,
        post_edit=post_edit,
        flags=(),
        comment=None,
        seconds=seconds,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        source=source,
        translation=translation,
        reference=None,
        model_id="m",
    )


def test_counts_histogram_throughput_and_time_per_word_by_hand():
    judgments = [
        judgment("a", 0.0, "ana", source="one two three", seconds=30),
        judgment("b", 0.05, "ana", source="one two three four five six", seconds=60),
        judgment("a", 0.1, "bob"),
        judgment("c", 0.95, "sim", simulated=True),
        judgment("d", 1.0, "sim", simulated=True),
    ]
    figures = feedback_stats(judgments, bootstrap=50)
    assert figures["items"] == 4
    assert figures["judgments"] == 5
    assert figures["reviewers"] == 3
    assert figures["simulated_judgments"] == 2
    assert figures["score_mean"] == pytest.approx((0.0 + 0.05 + 0.1 + 0.95 + 1.0) / 5)
    # [0, 0.1): 0.0 and 0.05; [0.1, 0.2): 0.1; [0.9, 1.0] (closed): 0.95 and 1.0
    assert figures["score_histogram"] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert figures["per_reviewer"] == [
        {"reviewer": "ana", "simulated": False, "judgments": 2, "seconds": 90.0, "judgments_per_hour": 80.0},
        {"reviewer": "bob", "simulated": False, "judgments": 1, "seconds": 0.0, "judgments_per_hour": None},
        {"reviewer": "sim", "simulated": True, "judgments": 2, "seconds": 0.0, "judgments_per_hour": None},
    ]
    assert figures["seconds_per_word"] == pytest.approx(90 / 9)  # untimed judgments count neither time nor words


def test_empty_judgments():
    figures = feedback_stats([])
    assert figures["judgments"] == 0 and figures["score_mean"] is None and figures["agreement"] is None
    assert figures["score_histogram"] == [0] * 10
    assert figures["effort"] == {"hter_mean": None, "ci_low": None, "ci_high": None, "post_edits": 0}
    assert figures["seconds_per_word"] is None


def test_alpha_matches_a_hand_computed_value_and_the_package():
    # Units a = {0, 0.5}, b = {1, 1}. Observed disagreement: 2 * 0.25 / 4 values = 0.125; expected: ordered pairs of
    # all four values, 2 * (0.25 + 1 + 1 + 0.25 + 0.25) / (4 * 3) = 5.5 / 12. alpha = 1 - 0.125 / (5.5 / 12) = 8/11.
    judgments = [
        judgment("a", 0.0, "ana"),
        judgment("a", 0.5, "bob"),
        judgment("b", 1.0, "ana"),
        judgment("b", 1.0, "bob"),
    ]
    agreement = score_agreement(judgments, bootstrap=20)
    assert agreement["alpha"] == pytest.approx(8 / 11)
    assert agreement["items"] == 2
    oracle = krippendorff.alpha(reliability_data=[[0.0, 1.0], [0.5, 1.0]], level_of_measurement="interval")
    assert agreement["alpha"] == pytest.approx(oracle)


def test_alpha_and_its_interval_against_the_package_on_a_known_matrix():
    # reviewers x items, NaN = not judged; item 5 was judged once only and does not count.
    matrix = np.array(
        [
            [0.9, 0.2, 0.6, 0.4, np.nan, 0.7, 0.1, 0.8],
            [1.0, 0.3, 0.5, np.nan, 0.5, 0.6, 0.2, 0.9],
            [0.8, np.nan, 0.7, 0.3, np.nan, np.nan, 0.0, 0.7],
        ]
    )
    judgments = [
        judgment(f"item{col}", float(matrix[row, col]), f"r{row}")
        for row in range(3)
        for col in range(matrix.shape[1])
        if not np.isnan(matrix[row, col])
    ]
    agreement = score_agreement(judgments, bootstrap=200, seed=3)
    kept = [col for col in range(matrix.shape[1]) if np.count_nonzero(~np.isnan(matrix[:, col])) > 1]
    assert agreement["items"] == len(kept) == 7
    assert agreement["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval")
    )
    # The interval re-derived: the same item resamples (numpy's default_rng(seed).choice), alpha by the package.
    units = matrix[:, kept]
    resamples = np.random.default_rng(3).choice(len(kept), size=(200, len(kept)), replace=True)
    alphas = []
    for rows in resamples:
        sample = units[:, rows]
        if len(np.unique(sample[~np.isnan(sample)])) < 2:
            alphas.append(1.0)
        else:
            alphas.append(krippendorff.alpha(reliability_data=sample, level_of_measurement="interval"))
    low, high = np.percentile(alphas, [2.5, 97.5])
    assert (agreement["ci_low"], agreement["ci_high"]) == pytest.approx((low, high))
    assert agreement["ci_low"] <= agreement["alpha"] <= agreement["ci_high"]


def test_identical_scores_agree_perfectly_and_single_judgments_give_no_agreement():
    same = [judgment(item, 0.7, name) for item in ("a", "b", "c") for name in ("ana", "bob")]
    assert score_agreement(same, bootstrap=10) == {"alpha": 1.0, "ci_low": 1.0, "ci_high": 1.0, "items": 3}
    assert score_agreement([judgment("a", 0.1), judgment("b", 0.9)]) is None


def test_hter_is_sacrebleu_ter_of_the_output_against_its_post_edit():
    # One insertion against a 6-word post-edit.
    mt, edited = "El paciente necesita atención.", "El paciente necesita atención urgente ."
    assert hter(mt, edited) == pytest.approx(TER(case_sensitive=True).sentence_score(mt, [edited]).score / 100)
    assert hter("El paciente necesita atención", "El paciente necesita atención urgente") == pytest.approx(1 / 5)
    assert hter("el paciente", "El paciente") == pytest.approx(1 / 2)  # a corrected capital is an edit
    assert hter("Sin cambios aquí.", "Sin cambios aquí.") == 0.0


def test_effort_mean_and_interval_over_post_edits_only():
    pairs = [
        ("el paciente", "El paciente"),
        ("tome una pastilla", "tome una pastilla"),
        ("dolor de pecho", "dolor torácico"),
        ("la herida limpia", "limpie la herida cada mañana"),
    ]
    judgments = [judgment(f"i{n}", 0.5, translation=mt, post_edit=pe) for n, (mt, pe) in enumerate(pairs)]
    judgments += [judgment("x", 0.5, post_edit=None), judgment("y", 0.5, post_edit="  ")]  # not post-edits
    effort = post_edit_effort(judgments, bootstrap=300, seed=7)
    values = np.array([TER(case_sensitive=True).sentence_score(mt, [pe]).score / 100 for mt, pe in pairs])
    assert effort["post_edits"] == 4
    assert effort["hter_mean"] == pytest.approx(values.mean())
    means = values[np.random.default_rng(7).choice(4, size=(300, 4), replace=True)].mean(axis=1)
    assert (effort["ci_low"], effort["ci_high"]) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])))


def test_alpha_equals_the_package_on_continuous_scores_and_scales_to_many_distinct_values():
    rng = np.random.default_rng(0)
    truth = rng.random(40)
    matrix = np.clip(truth + rng.normal(0, 0.15, size=(3, 40)), 0, 1)
    matrix[2, ::3] = np.nan  # some items judged twice, some three times
    judgments = [
        judgment(f"i{col:02d}", float(matrix[row, col]), f"r{row}")
        for row in range(3)
        for col in range(40)
        if not np.isnan(matrix[row, col])
    ]
    oracle = krippendorff.alpha(reliability_data=matrix, level_of_measurement="interval")
    assert score_agreement(judgments, bootstrap=10)["alpha"] == pytest.approx(oracle)
    # 2,000 items with 4,000 distinct scores: the package would need units x values x values floats (~256 GB).
    many = [judgment(f"j{i}", float(s), f"r{i % 2}") for i, s in enumerate(rng.random(4000))]
    many = [judgment(f"j{i // 2}", j.score, j.reviewer) for i, j in enumerate(many)]
    agreement = score_agreement(many, bootstrap=100)
    assert agreement["items"] == 2000 and agreement["ci_low"] <= agreement["alpha"] <= agreement["ci_high"]
    assert abs(agreement["alpha"]) < 0.1  # independent uniform scores: no agreement beyond chance
