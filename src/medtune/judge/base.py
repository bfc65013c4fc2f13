"""What every judge takes and returns: a ``JudgeItem`` in, a ``Judgment`` out, behind the ``Judge`` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class JudgeItem:
    """One answer to judge.

    ``gold`` is a multiple-choice letter, ``reference`` a reference answer (or reference translation),
    ``key_points`` the facts a good answer states (when empty, the reference judge derives them from
    ``reference``).
    """

    id: str
    prompt: str
    answer: str
    gold: str | None = None
    reference: str | None = None
    key_points: tuple[str, ...] = ()


@dataclass
class Judgment:
    """A judge's verdict on one item: overall score and per-criterion scores in [0, 1], and why.

    ``score`` is ``None`` exactly when ``failed`` says why no score could be given (e.g. the judge's
    reply held no parseable score after its retries); such items are listed, never silently scored.
    ``flags`` name notable cases that still have a score, e.g. ``no_option`` (an MCQ answer naming no option).
    """

    id: str
    score: float | None
    criteria: dict[str, float] = field(default_factory=dict)
    rationale: str = ""
    failed: str | None = None
    flags: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        """The JSON-able row written to judgment files."""
        record: dict[str, Any] = {
            "id": self.id,
            "score": self.score,
            "criteria": self.criteria,
            "rationale": self.rationale,
        }
        if self.failed is not None:
            record["failed"] = self.failed
        if self.flags:
            record["flags"] = list(self.flags)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Judgment:
        """The inverse of :meth:`to_record`."""
        return cls(
            id=str(record["id"]),
            score=record.get("score"),
            criteria=dict(record.get("criteria") or {}),
            rationale=record.get("rationale", ""),
            failed=record.get("failed"),
            flags=tuple(record.get("flags") or ()),
        )


class Judge(Protocol):
    """Scores answers. ``fingerprint`` changes whenever the scores could (model, rubric, weights, version)."""

    name: str

    def fingerprint(self) -> str: ...

    def score(self, items: Sequence[JudgeItem]) -> list[Judgment]: ...


def failed_judgment(item_id: str, reason: str) -> Judgment:
    """A judgment with no score, saying why."""
    return Judgment(id=item_id, score=None, rationale="", failed=reason)


def prompt_text(prompt: str | Sequence[dict]) -> str:
    """A prompt as plain text: chat messages become ``role: content`` lines (the judge sees the whole conversation)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)
