"""Preference pairs from judged candidates: margins, ties, all-bad, too-few, unscored and the histogram, by hand."""

from __future__ import annotations

import json

import pytest

from medtune.data.preference import load_preference_pairs
from medtune.errors import MedtuneError
from medtune.rlaif.pairs import build_pairs, pair_records, score_histogram, write_pairs

PROMPT = [{"role": "user", "content": "Question: Main sign of flu?"}]


def _candidates(prompt_id: str, texts: list[str], duplicate_of: dict[int, int] | None = None) -> list[dict]:
    ids = [f"{prompt_id}-c{k}" for k in range(len(texts))]
    return [
        {
            "id": ids[k],
            "prompt_id": prompt_id,
            "prompt": PROMPT if prompt_id != "p6" else "Take one tablet.",
            "sample": k,
            "text": text,
            "duplicate_of": ids[(duplicate_of or {})[k]] if k in (duplicate_of or {}) else None,
        }
        for k, text in enumerate(texts)
    ]


CANDIDATES = (
    _candidates("p1", ["Fever.", "Rash.", "Cough.", "fever."], duplicate_of={3: 0})  # 0.9 / 0.2 / 0.5: a pair
    + _candidates("p2", ["Fever", "Fever and chills"])  # 0.65 / 0.6: gap 0.05 < 0.1, a tie
    + _candidates("p3", ["Rash", "Cough"])  # 0 / 0: all bad
    + _candidates("p4", ["Fever", "FEVER"], duplicate_of={1: 0})  # one distinct answer: too few
    + _candidates("p5", ["A", "B", "C"])  # two unscored (None, missing): too few
    + _candidates("p6", ["Tome un comprimido.", "Tome una tableta."])  # 0.7 / 0.6: gap 0.0999..., still a pair
    + _candidates("p7", ["Fever", "High fever", "Rash"])  # 0.8 / 0.8 / 0.3: the first of the best is chosen
    + _candidates("p8", ["  ", "Fever"])  # an empty answer left out: too few
)
SCORES = {
    "p1-c0": 0.9, "p1-c1": 0.2, "p1-c2": 0.5, "p1-c3": 0.9,
    "p2-c0": 0.65, "p2-c1": 0.6,
    "p3-c0": 0.0, "p3-c1": 0.0,
    "p4-c0": 1.0, "p4-c1": 1.0,
    "p5-c0": None, "p5-c2": 0.4,
    "p6-c0": 0.7, "p6-c1": 0.6,
    "p7-c0": 0.8, "p7-c1": 0.8, "p7-c2": 0.3,
    "p8-c0": 0.0, "p8-c1": 0.5,
}  # fmt: skip


def test_pairs_margins_ties_all_bad_too_few_and_unscored_by_hand():
    pairs, stats = build_pairs(CANDIDATES, SCORES, margin=0.1)
    assert [p.id for p in pairs] == ["p1:p1-c0:p1-c1", "p6:p6-c0:p6-c1", "p7:p7-c0:p7-c2"]
    assert [(p.chosen, p.rejected, p.chosen_score, p.rejected_score) for p in pairs] == [
        ("Fever.", "Rash.", 0.9, 0.2),
        ("Tome un comprimido.", "Tome una tableta.", 0.7, 0.6),
        ("Fever", "Rash", 0.8, 0.3),
    ]
    assert pairs[0].prompt == PROMPT and pairs[1].prompt == "Take one tablet."
    summary = stats.to_dict()
    assert {k: summary[k] for k in ("prompts", "pairs", "ties", "all_bad", "too_few")} == {
        "prompts": 8, "pairs": 3, "ties": 1, "all_bad": 1, "too_few": 3
    }  # fmt: skip
    assert (summary["duplicates"], summary["unscored"], summary["empty"]) == (2, 2, 1)
    assert summary["pair_yield"] == 3 / 8
    # the scores that took part: 0.9 0.2 0.5 | 0.65 0.6 | 0 0 | 1.0 | 0.4 | 0.7 0.6 | 0.8 0.8 0.3 | 0.5
    assert summary["histogram"]["counts"] == [2, 0, 1, 1, 1, 2, 3, 1, 2, 2]
    assert summary["histogram"]["edges"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    scores = [0.9, 0.2, 0.5, 0.65, 0.6, 0, 0, 1.0, 0.4, 0.7, 0.6, 0.8, 0.8, 0.3, 0.5]
    assert summary["score_summary"]["n"] == 15
    assert summary["score_summary"]["mean"] == pytest.approx(sum(scores) / 15)
    # sorted: 0 0 .2 .3 .4 .5 .5 .6 .6 .65 .7 .8 .8 .9 1; quartiles at positions 3.5, 7, 10.5
    assert (summary["score_summary"]["q25"], summary["score_summary"]["median"]) == pytest.approx((0.35, 0.6))
    assert summary["score_summary"]["q75"] == pytest.approx(0.75)
    assert summary["gap_summary"]["mean"] == pytest.approx((0.7 + 0.1 + 0.5) / 3)


def test_a_wider_margin_turns_pairs_into_ties():
    pairs, stats = build_pairs(CANDIDATES, SCORES, margin=0.6)
    assert [p.id for p in pairs] == ["p1:p1-c0:p1-c1"] and stats.ties == 3


def test_histogram_bins_edge_scores_upwards_and_closes_the_last_bin():
    assert score_histogram([0.0, 0.1, 0.3, 0.6, 0.7, 0.99, 1.0, 0.1 + 0.2]) == [1, 1, 0, 2, 0, 0, 1, 1, 0, 2]


def test_bad_margin_and_out_of_range_scores_are_refused():
    with pytest.raises(MedtuneError, match=r"pairs.margin must be in \(0, 1\], got 0"):
        build_pairs(CANDIDATES, SCORES, margin=0)
    with pytest.raises(MedtuneError, match=r"Candidate 'p1-c1' \(prompt 'p1'\) has the score 1.5"):
        build_pairs(CANDIDATES, SCORES | {"p1-c1": 1.5})


def test_written_pairs_load_as_preference_data_with_scores_and_candidate_ids(tmp_path):
    pairs, stats = build_pairs(CANDIDATES, SCORES)
    path = tmp_path / "pairs.jsonl"
    stats_path = write_pairs(path, pairs, stats)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert rows == pair_records(pairs)
    assert (rows[0]["prompt_id"], rows[0]["chosen_id"], rows[0]["rejected_id"]) == ("p1", "p1-c0", "p1-c1")
    assert rows[0]["prompt"] == PROMPT and rows[0]["chosen"] == "Fever." and rows[0]["rejected_score"] == 0.2
    assert json.loads(stats_path.read_text(encoding="utf-8")) == stats.to_dict()
    assert stats_path.name == "pairs.stats.json"
    loaded, report = load_preference_pairs(str(path), on_bad_rows="fail", log=lambda _: None)
    assert [(p.id, p.prompt, p.chosen, p.rejected, p.chosen_score) for p in loaded] == [
        (p.id, p.prompt, p.chosen, p.rejected, p.chosen_score) for p in pairs
    ]
    assert report.kept == 3


def test_near_duplicates_with_different_answers_still_make_a_pair_but_exact_ones_do_not():
    rows = _candidates("q", ["Answer: A. 30 mL/min", "Answer: B. 60 mL/min", "answer: a. 30 ml/min"])
    rows[1] |= {"duplicate_of": rows[0]["id"], "duplicate_kind": "near"}  # a different option, near by characters
    rows[2] |= {"duplicate_of": rows[0]["id"], "duplicate_kind": "exact"}
    pairs, stats = build_pairs(rows, {"q-c0": 1.0, "q-c1": 0.0, "q-c2": 1.0})
    assert [(p.chosen, p.rejected) for p in pairs] == [("Answer: A. 30 mL/min", "Answer: B. 60 mL/min")]
    assert (stats.pairs, stats.duplicates) == (1, 1)
