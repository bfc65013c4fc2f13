"""The reference judge: MCQ letters, key-point coverage, MiniLM similarity and sentence chrF++."""

from __future__ import annotations

import numpy as np
import pytest
from sacrebleu.metrics import CHRF

from medtune.errors import MedtuneError
from medtune.judge.base import JudgeItem
from medtune.judge.embedding import sentence_model, similarities
from medtune.judge.keypoints import coverage, derive_key_points
from medtune.judge.reference import ReferenceJudge, final_option, prompt_options

MCQ_PROMPT = (
    "Question: Which drug is first-line for type 2 diabetes?\n"
    "A. Insulin glargine\nB. Metformin\nC. Glibenclamide\nD. Acarbose\n"
    "Answer with the letter of the correct option."
)


def test_prompt_options_are_read_from_the_prompt():
    assert prompt_options(MCQ_PROMPT) == {
        "A": "Insulin glargine",
        "B": "Metformin",
        "C": "Glibenclamide",
        "D": "Acarbose",
    }
    assert prompt_options("What is a fever?") == {}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The answer is (B)", "B"),
        ("B) Metformin, because it lowers hepatic glucose output.", "B"),
        ("**Answer: C**", "C"),
        ("answer: b", "B"),
        ("(b)", "B"),
        ("Metformin", "B"),  # the option's text instead of its letter
        ("Option D, acarbose.", "D"),
        ("A is tempting, but no: the answer is B.", "B"),
        ("Answer: A. Wait, on reflection the answer is B.", "B"),  # the final choice counts
        ("It depends on the patient.", None),
        ("", None),
    ],
)
def test_final_option(answer, expected):
    assert final_option(answer, prompt_options(MCQ_PROMPT)) == expected


def test_mcq_scores_and_counts_answers_without_an_option():
    judge = ReferenceJudge()
    items = [
        JudgeItem("right", MCQ_PROMPT, "Answer: B", gold="B"),
        JudgeItem("wrong", MCQ_PROMPT, "The answer is A.", gold="B"),
        JudgeItem("none", MCQ_PROMPT, "Ask your doctor.", gold="b"),
    ]
    right, wrong, none = judge.score(items)
    assert (right.score, right.criteria) == (1.0, {"correct": 1.0}) and "chose B" in right.rationale
    assert (wrong.score, wrong.flags) == (0.0, ())
    assert (none.score, none.flags) == (0.0, ("no_option",))


def test_key_points_by_hand():
    reference = "Aspirin reduces the risk of heart attacks in adults."
    # content words, then adjacent content-word pairs; stop words (the, of, in) removed
    assert derive_key_points(reference) == [
        "aspirin",
        "reduces",
        "risk",
        "heart",
        "attacks",
        "adults",
        "aspirin reduces",
        "heart attacks",
    ]
    # plural and accent/case differences match; "heart attack" covers "heart attacks"
    value, missing = coverage("ASPIRIN lowers heart attack risk.", derive_key_points(reference))
    assert missing == ["reduces", "adults", "aspirin reduces"]
    assert value == pytest.approx(5 / 8)
    assert coverage("La presión arterial", ["presiones arteriales"])[0] == 1.0
    assert coverage("no ear here", ["years"])[0] == 0.0  # whole words only
    assert coverage("anything", []) == (1.0, [])


def test_glossary_terms_are_key_points():
    points = derive_key_points("High blood pressure damages the kidneys.", glossary_terms=["blood pressure", "stroke"])
    assert "blood pressure" in points and "stroke" not in points


def test_given_key_points_replace_derived_ones():
    judge = ReferenceJudge(weights={"similarity": 0, "coverage": 1})
    item = JudgeItem(
        "k", "What does aspirin do?", "It thins the blood.", reference="x", key_points=("thins the blood", "bleeding")
    )
    [judgment] = judge.score([item])
    assert judgment.criteria["coverage"] == 0.5 and judgment.score == pytest.approx(0.5)
    assert "missing: bleeding" in judgment.rationale


def test_similarity_with_the_real_minilm():
    reference = "Hypertension is persistently high blood pressure."
    answers = ["High blood pressure that stays elevated over time.", "The stock market closed higher today."]
    close, unrelated = similarities(answers, [reference, reference])
    assert close > 0.5 > unrelated >= 0.0
    # the same value as the library's own cosine on raw embeddings
    vectors = sentence_model().encode([answers[0], reference])
    expected = float(np.dot(vectors[0], vectors[1]) / np.linalg.norm(vectors[0]) / np.linalg.norm(vectors[1]))
    assert close == pytest.approx(expected, abs=1e-5)


def test_free_text_score_is_the_weighted_sum():
    judge = ReferenceJudge(weights={"similarity": 0.6, "coverage": 0.4})
    item = JudgeItem("f", "q", "Aspirin reduces heart attacks.", reference="Aspirin reduces the risk of heart attacks.")
    [judgment] = judge.score([item])
    sim, cov = judgment.criteria["similarity"], judgment.criteria["coverage"]
    assert judgment.score == pytest.approx(0.6 * sim + 0.4 * cov, abs=1e-6)
    # key points: aspirin, reduces, risk, heart, attacks, "aspirin reduces", "heart attacks"; only "risk" is missing
    assert cov == pytest.approx(6 / 7)


def test_translation_is_sentence_chrf_over_100():
    judge = ReferenceJudge(task="translation")
    hyp, ref = "El paciente tiene fiebre alta.", "El paciente presenta fiebre alta."
    [judgment] = judge.score([JudgeItem("t", "The patient has a high fever.", hyp, reference=ref)])
    expected = round(CHRF(word_order=2).sentence_score(hyp, [ref]).score, 2) / 100
    assert judgment.score == pytest.approx(expected) and judgment.criteria == {"chrf": judgment.score}


def test_items_without_anything_to_compare_fail_with_a_reason():
    [judgment] = ReferenceJudge().score([JudgeItem("x", "q", "an answer")])
    assert judgment.score is None and "no gold letter or reference" in judgment.failed


def test_bad_weights_are_refused():
    with pytest.raises(MedtuneError, match="unknown weight"):
        ReferenceJudge(weights={"fluency": 1})
    with pytest.raises(MedtuneError, match="not all 0"):
        ReferenceJudge(weights={"similarity": 0, "coverage": 0})
