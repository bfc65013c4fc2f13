"""Rows of a ``medtune judge`` data file: single answers ``{prompt, answer}`` or pairs ``{prompt, chosen, rejected}``.

Either kind may carry ``id``, ``gold`` (a multiple-choice letter), ``reference`` (a reference answer
or translation), ``key_points`` (a list of strings) and, for calibration, ``human_score``. A
``prompt`` may be a string or a list of chat messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medtune.data.io import Row, read_rows
from medtune.errors import MedtuneError
from medtune.judge.base import JudgeItem, prompt_text

CHOSEN_SUFFIX, REJECTED_SUFFIX = "#chosen", "#rejected"


@dataclass(frozen=True)
class JudgeRow:
    """One row of a judge data file: a single ``answer``, or a ``chosen``/``rejected`` pair."""

    id: str
    origin: str  # file:line
    prompt: str
    answer: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    gold: str | None = None
    reference: str | None = None
    key_points: tuple[str, ...] = ()
    human_score: float | None = None

    @property
    def is_pair(self) -> bool:
        return self.chosen is not None

    def items(self) -> list[JudgeItem]:
        """The answers to judge: one item, or the chosen and rejected answers (ids ``<id>#chosen``, ``<id>#rejected``)."""
        shared = {"prompt": self.prompt, "gold": self.gold, "reference": self.reference, "key_points": self.key_points}
        if not self.is_pair:
            return [JudgeItem(id=self.id, answer=self.answer or "", **shared)]
        return [
            JudgeItem(id=self.id + CHOSEN_SUFFIX, answer=self.chosen, **shared),
            JudgeItem(id=self.id + REJECTED_SUFFIX, answer=self.rejected or "", **shared),
        ]


def _text(row: Row, key: str, required: bool) -> str | None:
    value = row.fields.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MedtuneError(f"{row.origin}: '{key}' is missing or empty; expected a non-empty string.")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and key in ("id", "gold"):
        return str(value)
    if not isinstance(value, str):
        raise MedtuneError(f"{row.origin}: '{key}' must be a string, got {type(value).__name__}.")
    return value


def _prompt(row: Row) -> str:
    value = row.fields.get("prompt")
    if isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
        return prompt_text(value)
    if isinstance(value, list):
        raise MedtuneError(f"{row.origin}: 'prompt' as a list must hold chat messages {{'role', 'content'}}.")
    return _text(row, "prompt", required=True) or ""


def _key_points(row: Row) -> tuple[str, ...]:
    value = row.fields.get("key_points")
    if value in (None, "", []):
        return ()
    if isinstance(value, str):  # a CSV cell: points separated by ';'
        value = [p for p in value.split(";")]
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise MedtuneError(f"{row.origin}: 'key_points' must be a list of non-empty strings (in CSV: 'a; b; c').")
    return tuple(p.strip() for p in value)


def _human_score(row: Row, required: bool) -> float | None:
    value = row.fields.get("human_score")
    if value in (None, ""):
        if required:
            raise MedtuneError(f"{row.origin}: 'human_score' is missing; calibration needs a human score on every row.")
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MedtuneError(f"{row.origin}: 'human_score' must be a number, got {value!r}.") from None


def parse_row(row: Row, index: int, need_human: bool = False) -> JudgeRow:
    """One validated row (see the module docstring).

    Raises:
        MedtuneError: a missing or empty field, a wrong type, neither ``answer`` nor ``chosen``/``rejected``,
            or chosen identical to rejected, naming ``file:line`` and the field.
    """
    fields: dict[str, Any] = row.fields
    has_pair = any(fields.get(k) not in (None, "") for k in ("chosen", "rejected"))
    if has_pair and fields.get("answer") not in (None, ""):
        raise MedtuneError(f"{row.origin}: a row holds either 'answer' or 'chosen'/'rejected', not both.")
    if not has_pair and fields.get("answer") in (None, ""):
        raise MedtuneError(
            f"{row.origin}: no answer to judge; a row needs 'answer' (a single answer) or 'chosen' and 'rejected' "
            f"(a pair). Found fields: {', '.join(sorted(fields))}."
        )
    chosen = _text(row, "chosen", required=has_pair)
    rejected = _text(row, "rejected", required=has_pair)
    if has_pair and chosen.strip() == rejected.strip():
        raise MedtuneError(
            f"{row.origin}: 'chosen' and 'rejected' are the same text; a pair needs two different answers."
        )
    gold = _text(row, "gold", required=False)
    if gold is not None and not (len(gold.strip()) == 1 and gold.strip().isalpha()):
        raise MedtuneError(f"{row.origin}: 'gold' must be one option letter such as 'B', got {gold!r}.")
    return JudgeRow(
        id=_text(row, "id", required=False) or f"row{index + 1}",
        origin=row.origin,
        prompt=_prompt(row),
        answer=None if has_pair else _text(row, "answer", required=True),
        chosen=chosen,
        rejected=rejected,
        gold=gold.strip().upper() if gold else None,
        reference=_text(row, "reference", required=False),
        key_points=_key_points(row),
        human_score=_human_score(row, need_human),
    )


def load_judge_rows(spec: str, need_human: bool = False) -> list[JudgeRow]:
    """Read and validate a judge data file (JSONL, CSV or TSV).

    Raises:
        MedtuneError: an unreadable file, an empty file, a bad row, or two rows with one id (naming both lines).
    """
    rows = [parse_row(row, index, need_human) for index, row in enumerate(read_rows(spec))]
    if not rows:
        raise MedtuneError(f"{spec}: no rows to judge.")
    seen: dict[str, str] = {}
    for row in rows:
        if row.id in seen:
            raise MedtuneError(f"{row.origin}: id '{row.id}' is also used at {seen[row.id]}; ids must be unique.")
        seen[row.id] = row.origin
    return rows
