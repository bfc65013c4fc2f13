"""Exact and near duplicates among one prompt's candidates.

Two candidates are exact duplicates when their texts are equal after whitespace and case
normalisation, and near duplicates when difflib's similarity ratio of the normalised texts is at
least :data:`NEAR_DUPLICATE_RATIO`. Why difflib's character ratio rather than token-set Jaccard:
it catches the same answer with one changed word or punctuation mark at any length, while Jaccard
ignores word order and jumps in steps of a whole word on short answers (one word of five is 0.8).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

NEAR_DUPLICATE_RATIO = 0.9


def normalise(text: str) -> str:
    """The text compared for duplicates: lower case, runs of whitespace as one space, no outer space."""
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class DuplicateMark:
    """Which earlier candidate a candidate repeats (``of``: its index) and how (``exact`` or ``near``)."""

    of: int
    kind: str


def near_duplicates(a: str, b: str) -> bool:
    """Whether difflib's ratio (2 x matching characters / all characters) of two normalised texts reaches the threshold."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    # real_quick_ratio and quick_ratio are cheap upper bounds of ratio: most distinct pairs stop there.
    return (
        matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO
        and matcher.quick_ratio() >= NEAR_DUPLICATE_RATIO
        and matcher.ratio() >= NEAR_DUPLICATE_RATIO
    )


def mark_duplicates(texts: Sequence[str]) -> list[DuplicateMark | None]:
    """For each text, ``None`` when it is distinct, else the earliest distinct text it repeats.

    A text is compared with the distinct texts before it only, so the first of a group stays the
    distinct one and every later member points at it (never at another duplicate).
    """
    normalised = [normalise(t) for t in texts]
    marks: list[DuplicateMark | None] = []
    distinct: list[int] = []
    for i, text in enumerate(normalised):
        mark = next((DuplicateMark(j, "exact") for j in distinct if normalised[j] == text), None)
        if mark is None:
            mark = next(
                (DuplicateMark(j, "near") for j in distinct if near_duplicates(normalised[j], text)),
                None,
            )
        marks.append(mark)
        if mark is None:
            distinct.append(i)
    return marks
