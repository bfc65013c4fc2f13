"""Reading a judge model's reply: JSON repaired with ``json_repair``, scores normalised to [0, 1].

Replies come fenced in code blocks, wrapped in prose, with trailing commas or single quotes, and
with scores written as ``8``, ``0.8``, ``"8/10"``, ``"80%"`` or ``"7 out of 10"``. Anything that
still yields no score for every criterion raises :class:`ReplyUnreadable`; callers count, retry
and list it, never score it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import json_repair

_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:/|out\s+of|of)\s*(\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*$")
_WINNERS = {"a": "A", "1": "A", "answer a": "A", "answer 1": "A", "b": "B", "2": "B", "answer b": "B", "answer 2": "B"}
_TIES = ("tie", "equal", "same", "both", "neither", "none")


class ReplyUnreadable(ValueError):
    """A judge reply that holds no usable JSON verdict; the message says what is missing."""


def read_json_object(reply: str) -> dict[str, Any]:
    """The JSON object in a reply, repaired (fences, prose around it, trailing commas, single quotes).

    Raises:
        ReplyUnreadable: no JSON object can be recovered.
    """
    parsed = json_repair.loads(reply or "")
    if isinstance(parsed, list):  # prose with several objects: the first that is an object
        parsed = next((p for p in parsed if isinstance(p, dict)), None)
    if not isinstance(parsed, dict) or not parsed:
        raise ReplyUnreadable("no JSON object in the reply")
    return parsed


def _explicit_fraction(value: Any) -> float | None:
    """A score written with its own scale ("8/10", "80%", "7 out of 10"), as a fraction; else ``None``."""
    if not isinstance(value, str):
        return None
    if match := _FRACTION.match(value):
        denominator = float(match.group(2))
        return float(match.group(1)) / denominator if denominator else None
    if match := _PERCENT.match(value):
        return float(match.group(1)) / 100
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and (match := _NUMBER.match(value)):
        return float(match.group(1))
    return None


def normalise_scores(raw: dict[str, Any], criteria: Sequence[str]) -> dict[str, float]:
    """Each criterion's score in [0, 1].

    A score with its own scale ("8/10", "80%") uses it. Bare numbers share one scale per reply:
    all at most 1 -> 0-1; else at most 10 -> 0-10; else at most 100 -> percent.

    Raises:
        ReplyUnreadable: a criterion missing, not a number, or outside every scale.
    """
    explicit: dict[str, float] = {}
    bare: dict[str, float] = {}
    for criterion in criteria:
        if criterion not in raw:
            raise ReplyUnreadable(f"no score for '{criterion}'")
        value = raw[criterion]
        if isinstance(value, dict):  # {"score": 8, "reason": ...}
            value = value.get("score", value.get("value"))
        fraction = _explicit_fraction(value)
        if fraction is not None:
            explicit[criterion] = fraction
        elif (number := _number(value)) is not None:
            bare[criterion] = number
        else:
            raise ReplyUnreadable(f"the score of '{criterion}' is not a number: {value!r}")
    if bare:
        top = max(bare.values())
        scale = next((s for s in (1.0, 10.0, 100.0) if top <= s), None)
        if scale is None:
            raise ReplyUnreadable(f"scores above 100 ({bare}); expected 0-10 or 0-1")
        explicit.update({c: v / scale for c, v in bare.items()})
    for criterion, value in explicit.items():
        if not 0 <= value <= 1:
            raise ReplyUnreadable(f"the score of '{criterion}' is out of range ({value:g} of 1)")
    return {c: explicit[c] for c in criteria}


def parse_rubric_reply(reply: str, criteria: Sequence[str]) -> tuple[dict[str, float], str]:
    """Per-criterion scores in [0, 1] and the rationale from a rubric reply.

    Accepts ``{"scores": {...}, "rationale": ...}`` and, leniently, the scores at the top level.

    Raises:
        ReplyUnreadable: no JSON, or a criterion without a usable score.
    """
    data = read_json_object(reply)
    scores = data.get("scores")
    if not isinstance(scores, dict):
        scores = data
    rationale = data.get("rationale", data.get("reason", ""))
    return normalise_scores(scores, criteria), str(rationale or "").strip()


def parse_verdict_reply(reply: str) -> tuple[str, str]:
    """``("A" | "B" | "tie", rationale)`` from a pairwise reply ``{"winner": "A", "rationale": ...}``.

    Raises:
        ReplyUnreadable: no JSON, or no recognisable winner.
    """
    data = read_json_object(reply)
    winner = data.get("winner", data.get("better"))
    text = " ".join(str(winner or "").lower().split()).strip(" .\"'")
    rationale = str(data.get("rationale", data.get("reason", "")) or "").strip()
    if text in _WINNERS:
        return _WINNERS[text], rationale
    if any(text.startswith(tie) for tie in _TIES):
        return "tie", rationale
    raise ReplyUnreadable(f"no winner 'A', 'B' or 'tie' in the reply (got {winner!r})")
