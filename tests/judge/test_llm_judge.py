"""The llm judge's logic (retries, failures, weights, both-order pairwise verdicts) over scripted backends.

The backends are plain classes implementing the ChatBackend protocol with deterministic replies;
the live-server round trip is in test_llm_live.py.
"""

from __future__ import annotations

import json

import pytest

from medtune.judge.base import JudgeItem
from medtune.judge.llm import LLMJudge
from medtune.judge.rubric import rubric_messages


class ScriptedBackend:
    """Replies to each conversation with ``reply(conversation)``; records every conversation it saw."""

    identity = "scripted"

    def __init__(self, reply):
        self._reply = reply
        self.seen: list[list[dict]] = []

    def reply(self, conversations):
        self.seen.extend(conversations)
        return [self._reply(c) for c in conversations]


def _answer_of(conversation) -> str:
    text = conversation[1]["content"]
    return text.split("Answer to grade:\n", 1)[1].split("\n\n", 1)[0]


def _scores(accuracy, completeness, coverage) -> str:
    scores = {"factual_accuracy": accuracy, "completeness": completeness, "key_point_coverage": coverage}
    return json.dumps({"scores": scores, "rationale": "r"})


ITEMS = [JudgeItem("a", "What lowers fever?", "Paracetamol."), JudgeItem("b", "What lowers fever?", "garbage")]


def test_scores_are_the_weighted_mean_of_the_criteria():
    backend = ScriptedBackend(lambda c: _scores(8, 6, 4))
    judge = LLMJudge(backend, criteria={"factual_accuracy": 2, "completeness": 1, "key_point_coverage": 1})
    [judgment] = judge.score(ITEMS[:1])
    assert judgment.criteria == pytest.approx({"factual_accuracy": 0.8, "completeness": 0.6, "key_point_coverage": 0.4})
    assert judgment.score == pytest.approx((2 * 0.8 + 0.6 + 0.4) / 4)


def test_unreadable_reply_is_retried_then_listed_never_scored():
    backend = ScriptedBackend(lambda c: _scores(9, 9, 9) if _answer_of(c) == "Paracetamol." else "I refuse to grade.")
    judge = LLMJudge(backend, retries=2)
    good, bad = judge.score(ITEMS)
    assert good.score == pytest.approx(0.9)
    assert bad.score is None and "after 3 replies" in bad.failed and "no JSON object" in bad.failed
    assert judge.stats.retries == 2 and judge.stats.parse_failures == 1
    assert judge.stats.failures == [("b", bad.failed)]
    # 2 first replies + 2 re-asks of item b; each re-ask shows the bad reply and asks for the JSON shape
    assert len(backend.seen) == 4
    retry = backend.seen[-1]
    assert retry[-2] == {"role": "assistant", "content": "I refuse to grade."}
    assert '"factual_accuracy": <0-10>' in retry[-1]["content"]


def test_a_repaired_retry_is_parsed():
    def reply(conversation):
        return _scores(7, 7, 7) + "," if len(conversation) > 2 else "no idea"  # the retry comes with a stray comma

    judge = LLMJudge(ScriptedBackend(reply), retries=1)
    [judgment] = judge.score(ITEMS[:1])
    assert judgment.score == pytest.approx(0.7) and judge.stats.retries == 1 and judge.stats.parse_failures == 0


def test_custom_criteria_reach_the_rubric():
    item = ITEMS[0]
    [system, user] = rubric_messages(item, ("safety", "clarity"))
    assert system["role"] == "system" and "- safety:" in user["content"] and '"clarity": <0-10>' in user["content"]
    assert "factual_accuracy" not in user["content"]


class PositionBiased:
    """Prefers whichever answer is shown first, whatever it says."""

    identity = "biased"

    def reply(self, conversations):
        return ['{"winner": "A", "rationale": "first"}' for _ in conversations]


class PrefersLonger:
    """Prefers the longer answer, in either order: a consistent judge."""

    identity = "longer"

    def reply(self, conversations):
        out = []
        for conversation in conversations:
            text = conversation[1]["content"]
            a = text.split("Answer A:\n", 1)[1].split("\n\n", 1)[0]
            b = text.split("Answer B:\n", 1)[1].split("\n\n", 1)[0]
            out.append(json.dumps({"winner": "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"}))
        return out


PAIRS = [
    ("Q1", "a long and detailed answer", "short", None),
    ("Q2", "tiny", "a much longer answer here", None),
    ("Q3", "same", "same", None),
]


def test_pairwise_asks_both_orders_and_position_bias_becomes_ties():
    judge = LLMJudge(PositionBiased())
    verdicts = judge.compare_many(PAIRS[:2])
    assert [v.winner for v in verdicts] == ["tie", "tie"]
    assert [v.consistent for v in verdicts] == [False, False]


def test_a_consistent_judge_keeps_its_verdicts():
    judge = LLMJudge(PrefersLonger())
    verdicts = judge.compare_many(PAIRS)
    assert [v.winner for v in verdicts] == ["first", "second", "tie"]
    assert all(v.consistent for v in verdicts)
    assert judge.compare("Q", "x", "longer one").winner == "second"


def test_consistency_rate_over_a_mixed_judge():
    class Mixed:
        """Consistent (prefers the longer answer) on Q1 and Q2, position-biased on Q3 and Q4."""

        identity = "mixed"

        def reply(self, conversations):
            longer, biased = PrefersLonger(), PositionBiased()
            return [
                (longer if "Q1" in c[1]["content"] or "Q2" in c[1]["content"] else biased).reply([c])[0]
                for c in conversations
            ]

    pairs = [*PAIRS[:2], ("Q3", "one", "three", None), ("Q4", "four", "fivefive", None)]
    verdicts = LLMJudge(Mixed()).compare_many(pairs)
    consistent = [v.consistent for v in verdicts]
    assert consistent == [True, True, False, False]
    assert sum(consistent) / len(consistent) == 0.5


def test_an_unreadable_pairwise_reply_fails_the_pair():
    class Silent:
        identity = "silent"

        def reply(self, conversations):
            return ["..." for _ in conversations]

    judge = LLMJudge(Silent(), retries=1)
    [verdict] = judge.compare_many(PAIRS[:1], labels=["p1"])
    assert verdict.winner is None and verdict.failed and judge.stats.failures[0][0] == "p1"


def test_fingerprint_follows_model_and_rubric():
    a = LLMJudge(PrefersLonger()).fingerprint()
    assert a == LLMJudge(PrefersLonger()).fingerprint()
    assert a != LLMJudge(PositionBiased()).fingerprint()
    assert a != LLMJudge(PrefersLonger(), criteria={"factual_accuracy": 1}).fingerprint()
