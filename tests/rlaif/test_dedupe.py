"""Exact and near duplicates among one prompt's candidates, on hand-made texts."""

from __future__ import annotations

from difflib import SequenceMatcher

from medtune.rlaif.dedupe import NEAR_DUPLICATE_RATIO, DuplicateMark, mark_duplicates, near_duplicates, normalise


def test_normalise_folds_case_and_whitespace():
    assert normalise("  The Dose\tis\n 5 MG. ") == "the dose is 5 mg."


def test_exact_near_and_distinct_by_hand():
    texts = [
        "The dose is 5 mg once a day.",
        "the dose  is 5 MG once a day.",  # exact after normalisation
        "The dose is 5 mg once a day",  # one character less: ratio 2*27/(28+27) = 0.98
        "Take it with food.",
        "Take it with food!",  # ratio 2*17/36 = 0.944: near the fourth, not the first
    ]
    assert mark_duplicates(texts) == [
        None,
        DuplicateMark(0, "exact"),
        DuplicateMark(0, "near"),
        None,
        DuplicateMark(3, "near"),
    ]


def test_a_negation_below_the_threshold_keeps_both_answers():
    a, b = "the drug is safe", "the drug is not safe"
    ratio = SequenceMatcher(None, a, b).ratio()
    assert ratio == 2 * 16 / 36 and ratio < NEAR_DUPLICATE_RATIO
    assert not near_duplicates(a, b)
    assert mark_duplicates([a, b]) == [None, None]


def test_near_duplicates_agrees_with_difflib_ratio():
    base = "Metformin is the first-line drug for type 2 diabetes in most adults."
    variants = [base[:-1], base.replace("most", "many"), base.replace("first-line", "second-line"), base[:30], ""]
    for other in variants:
        expected = SequenceMatcher(None, base, other, autojunk=False).ratio() >= NEAR_DUPLICATE_RATIO
        assert near_duplicates(base, other) == expected, other


def test_later_copies_point_at_the_first_distinct_text_never_at_a_duplicate():
    marks = mark_duplicates(["yes", "Yes", "YES ", "no", "no"])
    assert marks == [None, DuplicateMark(0, "exact"), DuplicateMark(0, "exact"), None, DuplicateMark(3, "exact")]
