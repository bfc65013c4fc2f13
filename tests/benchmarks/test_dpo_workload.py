"""The DPO workload's pairs, built from MedMCQA rows in memory."""

from __future__ import annotations

from benchmarks.workloads.dpo import build_pairs, question_turn


def test_dpo_pairs_take_the_correct_option_as_chosen_and_a_wrong_one_as_rejected():
    rows = [
        {"id": "q1", "question": "Fever? ", "options": {"A": "yes", "B": "no", "C": "maybe"}, "answer": "B"},
        {"id": "q2", "question": "Empty", "options": {"A": "", "B": "x"}, "answer": "A"},  # no chosen text
        {"id": "q3", "question": "Same", "options": {"A": "x", "B": "x"}, "answer": "A"},  # no different wrong text
    ]
    pairs = build_pairs(rows, seed=1)
    assert [p["id"] for p in pairs] == ["q1"]
    assert pairs[0]["prompt"] == question_turn(rows[0]) == "Fever?\n\nA. yes\nB. no\nC. maybe"
    assert pairs[0]["chosen"] == "no" and pairs[0]["rejected"] in ("yes", "maybe")
    assert {build_pairs(rows, seed=s)[0]["rejected"] for s in range(20)} == {"yes", "maybe"}
