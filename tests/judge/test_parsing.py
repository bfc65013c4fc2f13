"""Reading judge replies: JSON repair and score normalisation."""

from __future__ import annotations

import pytest

from medtune.judge.parsing import ReplyUnreadable, normalise_scores, parse_rubric_reply, parse_verdict_reply

CRITERIA = ("factual_accuracy", "completeness")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"scores": {"factual_accuracy": 8, "completeness": 6}, "rationale": "ok"}', (0.8, 0.6)),
        # a code fence and a trailing comma
        ('```json\n{"scores": {"factual_accuracy": 9, "completeness": 10,}, "rationale": "good",}\n```', (0.9, 1.0)),
        # prose around the JSON, single quotes, scores as fractions of their own scale
        (
            "Sure! Here is my grading: {'scores': {'factual_accuracy': '8/10', 'completeness': '3 out of 5'}, "
            "'rationale': 'fine'} I hope this helps.",
            (0.8, 0.6),
        ),
        # percentages, with and without the sign (the sign is lost by the repair: > 10 reads as percent)
        ('{"scores": {"factual_accuracy": "75%", "completeness": 50}, "rationale": ""}', (0.75, 0.5)),
        # a 0-1 reply stays as it is
        ('{"scores": {"factual_accuracy": 0.25, "completeness": 1}, "rationale": ""}', (0.25, 1.0)),
        # scores at the top level, a score given as an object
        ('{"factual_accuracy": {"score": 7}, "completeness": "4", "rationale": "x"}', (0.7, 0.4)),
    ],
)
def test_rubric_replies_are_repaired_and_normalised(reply, expected):
    scores, _ = parse_rubric_reply(reply, CRITERIA)
    assert scores == pytest.approx(dict(zip(CRITERIA, expected, strict=True)))


def test_rationale_is_kept():
    _, rationale = parse_rubric_reply(
        '{"scores": {"factual_accuracy": 1, "completeness": 1}, "rationale": " brief "}', CRITERIA
    )
    assert rationale == "brief"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I cannot grade this answer.", "no JSON object"),
        ("", "no JSON object"),
        ('{"scores": {"factual_accuracy": 8}, "rationale": "forgot one"}', "no score for 'completeness'"),
        ('{"scores": {"factual_accuracy": "high", "completeness": 5}}', "not a number"),
        ('{"scores": {"factual_accuracy": 250, "completeness": 5}}', "above 100"),
        ('{"scores": {"factual_accuracy": "12/10", "completeness": 5}}', "out of range"),
        ('{"scores": {"factual_accuracy": -3, "completeness": 5}}', "out of range"),
    ],
)
def test_unreadable_replies_say_why(reply, reason):
    with pytest.raises(ReplyUnreadable, match=reason):
        parse_rubric_reply(reply, CRITERIA)


def test_bare_numbers_share_one_scale_per_reply():
    # 1 next to 8 is on the 0-10 scale (0.1), not a perfect 0-1 score
    assert normalise_scores({"a": 1, "b": 8}, ("a", "b")) == pytest.approx({"a": 0.1, "b": 0.8})
    assert normalise_scores({"a": 1, "b": 0.5}, ("a", "b")) == pytest.approx({"a": 1.0, "b": 0.5})
    assert normalise_scores({"a": 1, "b": 40}, ("a", "b")) == pytest.approx({"a": 0.01, "b": 0.4})


@pytest.mark.parametrize(
    ("reply", "winner"),
    [
        ('{"winner": "A", "rationale": "more complete"}', "A"),
        ("```json\n{'winner': 'answer b', 'rationale': 'x',}\n```", "B"),
        ('Verdict: {"winner": "2"}', "B"),
        ('{"winner": "Tie", "rationale": "equal"}', "tie"),
        ('{"winner": "both are equally good"}', "tie"),
    ],
)
def test_verdicts(reply, winner):
    assert parse_verdict_reply(reply)[0] == winner


def test_verdict_without_winner_is_unreadable():
    with pytest.raises(ReplyUnreadable, match="no winner"):
        parse_verdict_reply('{"winner": "C"}')
