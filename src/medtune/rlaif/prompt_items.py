"""The prompts candidates are generated for: one :class:`PromptItem` per question or source sentence.

A prompt item carries what the judge later compares a candidate with: the gold option letter of a
multiple-choice question, the reference answer of a free-text question, or the reference translation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medtune.data.ids import stable_ids
from medtune.data.io import Row, columns_of
from medtune.data.mcq import MCQItem
from medtune.data.parallel import Pair
from medtune.data.prompts import mcq_to_messages, question_user_message
from medtune.data.validate import Issue, ValidationReport, enforce_bad_row_policy
from medtune.errors import MedtuneError


@dataclass(frozen=True)
class PromptItem:
    """One prompt: plain text (a source sentence) or chat messages ending with a user turn.

    ``gold`` is a multiple-choice answer letter, ``reference`` a reference answer or translation,
    ``key_points`` what a good answer must mention (for the reference judge's coverage).
    """

    id: str
    prompt: str | list[dict]
    gold: str | None = None
    reference: str | None = None
    key_points: tuple[str, ...] = ()


def prompt_items_from_mcq(items: Sequence[MCQItem], system: str | None = None) -> list[PromptItem]:
    """Multiple-choice questions as chat prompts (system turn when given, the question), gold = the answer letter.

    The messages are those qa-sft trains on (:func:`medtune.data.prompts.mcq_to_messages`) without the
    assistant turn, so the policy is asked exactly as it was taught.
    """
    return [PromptItem(item.id, mcq_to_messages(item, system)[:-1], gold=item.answer) for item in items]


def prompt_items_from_pairs(pairs: Sequence[Pair]) -> list[PromptItem]:
    """Translation pairs as prompts: the source sentence, reference = the target.

    The id is the pair's own id, else a hash of the source (repeated sources get ``~2``, ``~3``, ...).
    """
    ids = stable_ids([p.id for p in pairs], [(p.src,) for p in pairs])
    return [PromptItem(i, p.src, reference=p.tgt) for i, p in zip(ids, pairs, strict=True)]


def prompt_items_from_qa(
    rows: Sequence[Row],
    question_col: str,
    reference_col: str,
    *,
    context_col: str | None = None,
    key_points_col: str = "key_points",
    id_col: str = "id",
    system: str | None = None,
    on_bad_rows: str = "skip",
    name: str = "qa",
    log: Callable[[str], Any] = print,
) -> list[PromptItem]:
    """Free-text questions with a reference answer (e.g. PubMedQA's ``question`` + ``long_answer``) as chat prompts.

    Args:
        rows: rows from :func:`medtune.data.io.read_rows` (each keeps its ``file:line`` origin).
        question_col, reference_col: the question and the reference answer columns.
        context_col: an optional column whose text opens the question (``Context: ...``), e.g. an abstract.
        key_points_col: a column holding a list of key points, read when present.
        id_col: the column holding each row's own id; without it, a hash of the question and context.
        system: an optional system turn.
        on_bad_rows: ``skip`` drops rows with an empty question or reference (reported); ``fail`` refuses them.
    Raises:
        MedtuneError: a named column missing (listing the columns found), ``fail`` with a bad row, or no row left.
    """
    found = columns_of(list(rows))
    missing = [c for c in (question_col, reference_col, context_col) if c and c not in found]
    if missing:
        raise MedtuneError(
            f"Data set '{name}': column(s) {', '.join(repr(c) for c in missing)} not found. Columns found: "
            f"{', '.join(repr(c) for c in found)}. Name the question, reference answer and context columns."
        )
    report = ValidationReport(name=name, total=len(rows), unit="questions")
    kept: list[Row] = []
    for row in rows:
        problem = _qa_problem(row, question_col, reference_col, key_points_col)
        if problem is None:
            kept.append(row)
        else:
            report.issues.append(Issue(row.origin, *problem))
    enforce_bad_row_policy(report, len(kept), on_bad_rows)
    if report.issues:
        log(report.summary())
    contexts = [_context(row, context_col) for row in kept]
    ids = stable_ids(
        [row.fields.get(id_col) for row in kept],
        [(row.fields[question_col].strip(), ctx or "") for row, ctx in zip(kept, contexts, strict=True)],
    )
    items = []
    for item_id, row, context in zip(ids, kept, contexts, strict=True):
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question_user_message(row.fields[question_col].strip(), context)})
        points = tuple(p.strip() for p in row.fields.get(key_points_col) or ())
        items.append(PromptItem(item_id, messages, reference=row.fields[reference_col].strip(), key_points=points))
    return items


def _context(row: Row, context_col: str | None) -> str | None:
    value = row.fields.get(context_col) if context_col else None
    return value.strip() or None if isinstance(value, str) else None


def _qa_problem(row: Row, question_col: str, reference_col: str, key_points_col: str) -> tuple[str, str] | None:
    """``(check, detail)`` for a row that cannot become a prompt, else ``None``."""
    question, reference = row.fields.get(question_col), row.fields.get(reference_col)
    if not isinstance(question, str) or not question.strip():
        return "empty_question", f"column '{question_col}'"
    if not isinstance(reference, str) or not reference.strip():
        return "empty_text", f"reference column '{reference_col}'"
    points = row.fields.get(key_points_col)
    if points is not None and not (isinstance(points, list) and all(isinstance(p, str) and p.strip() for p in points)):
        return "malformed", f"'{key_points_col}' must be a list of non-empty texts"
    return None
