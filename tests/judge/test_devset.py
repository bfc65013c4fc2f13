"""On the development set of human-preferred answers, the combined score ranks at least as well as similarity alone."""

from __future__ import annotations

import json
from pathlib import Path

from medtune.judge.agreement import pairwise_accuracy
from medtune.judge.reference import ReferenceJudge
from medtune.judge.rows import load_judge_rows

DEVSET = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "judge_devset.jsonl"


def test_devset_is_well_formed():
    rows = load_judge_rows(str(DEVSET))
    assert 40 <= len(rows) <= 60
    assert all(r.is_pair and r.reference for r in rows)
    flaws = {json.loads(line)["flaw"] for line in DEVSET.read_text().splitlines()}
    assert flaws == {"incomplete", "wrong", "vague", "unsafe"}


def test_combined_score_ranks_at_least_as_well_as_similarity_alone():
    rows = load_judge_rows(str(DEVSET))
    judgments = ReferenceJudge().score([item for row in rows for item in row.items()])
    by_id = {j.id: j for j in judgments}

    def accuracy(value) -> float:
        chosen = [value(by_id[r.id + "#chosen"]) for r in rows]
        rejected = [value(by_id[r.id + "#rejected"]) for r in rows]
        return pairwise_accuracy(chosen, rejected)["pairwise_accuracy"]

    similarity_only = accuracy(lambda j: j.criteria["similarity"])
    combined = accuracy(lambda j: j.score)
    assert combined >= similarity_only
    assert combined > 0.5  # far better than chance on this set
