"""Multiple-choice questions (MedMCQA, PubMedQA, the bundled demo set) in one shape: :class:`MCQItem`.

Two file layouts are read, detected from the columns: ``question`` + ``options`` + ``answer`` (options a
dict ``{letter: text}``, a list, or either as JSON text in CSV/TSV) and the raw MedMCQA layout
``question`` + ``opa``/``opb``/``opc``/``opd`` + ``cop``. In files ``cop`` is 1-based (MedMCQA's own
JSON); a Hugging Face dataset's class-label answer (the hub MedMCQA stores ``cop`` as a 0-based
``ClassLabel`` named ``a``..``d``) is read through its label names, never by guessing a base.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from medtune.data.digest import text_digest
from medtune.data.ids import text_id
from medtune.data.io import Row, columns_of, read_rows
from medtune.data.validate import Issue, ValidationReport, enforce_bad_row_policy
from medtune.errors import MedtuneError

RAW_OPTION_COLUMNS = ("opa", "opb", "opc", "opd", "ope")
LAYOUT_HELP = (
    "'question' + 'options' ({letter: text}, a list, or either as JSON text) + 'answer' (a letter or the "
    "option's text), or MedMCQA's 'question' + 'opa'/'opb'/'opc'/'opd' + 'cop' (1-based number or letter; "
    "a Hugging Face class label by its names)"
)
# "B", "b", "(b)", "B.", "B)", "B:" all name option B.
_LETTER = re.compile(r"\(?\s*([A-Za-z])\s*[).:]?")


@dataclass(frozen=True)
class MCQItem:
    """One validated question: options keyed "A", "B", ... in order, ``answer`` one of those keys."""

    id: str
    question: str
    options: dict[str, str]
    answer: str
    context: str | None = None
    subject: str | None = None
    explanation: str | None = None
    origin: str = ""

    def to_record(self) -> dict:
        """A JSON-ready dict; :func:`mcq_from_records` rebuilds the item."""
        return asdict(self)


class _Unreadable(Exception):
    """A row whose options cannot be read (reported as ``malformed``, never raised to the user)."""


def load_mcq(
    spec: str, on_bad_rows: str = "skip", name: str = "mcq", log: Callable[[str], Any] = print
) -> tuple[list[MCQItem], ValidationReport]:
    """Read and validate multiple-choice questions from a file, ``demo:<file>`` or ``hf:<dataset>[:split]``.

    Args:
        spec: the data source (JSONL, CSV or TSV; see :func:`medtune.data.io.read_rows`).
        on_bad_rows: ``skip`` drops bad rows and reports them; ``fail`` raises listing the first ones.
        name: label for messages and the report, e.g. ``eval``.
        log: receives the validation summary.
    Returns:
        The kept questions (texts stripped) and the validation report. ``id`` is the row's ``id`` or,
        without one, a stable hash of the question and its options (:func:`medtune.data.ids.text_id`);
        ``subject`` comes from ``subject``, ``subject_name`` or ``topic``.
    Raises:
        MedtuneError: no rows or no known layout (listing the columns found), ``fail`` with any bad
            row, or nothing left after validation.
    """
    rows = read_rows(spec)
    raw_layout = _detect_raw_layout(spec, rows)
    report = ValidationReport(name=name, total=len(rows), unit="questions")
    kept: list[MCQItem] = []
    seen: set[bytes] = set()  # digests of the questions: memory grows with the row count, not the text
    for row in rows:
        try:
            options = _raw_options(row.fields) if raw_layout else _options(row.fields.get("options"))
        except _Unreadable as exc:
            report.issues.append(Issue(row.origin, "malformed", str(exc)))
            continue
        answer_column = "cop" if raw_layout else "answer"
        question = row.fields.get("question")
        problem = _options_problem(question, options)
        answer = None
        if problem is None and answer_column in row.class_labels:
            answer, problem = _class_label_answer(
                row.fields.get(answer_column), row.class_labels[answer_column], options, raw_layout
            )
        elif problem is None:
            answer, problem = _resolve_answer(row.fields.get(answer_column), options, numbered=raw_layout)
        if problem:
            report.issues.append(Issue(row.origin, *problem))
            continue
        text, stripped = question.strip(), {k: v.strip() for k, v in options.items()}
        key = text_digest(text, *(part for item in stripped.items() for part in item))
        if key in seen:
            report.issues.append(Issue(row.origin, "duplicate_row", repr(text[:40])))
            continue
        seen.add(key)
        kept.append(_item(row, text, stripped, answer))
    enforce_bad_row_policy(report, len(kept), on_bad_rows)
    log(report.summary())
    return kept, report


def mcq_from_records(records: list[dict]) -> list[MCQItem]:
    """Rebuild questions saved with :meth:`MCQItem.to_record`."""
    fields = MCQItem.__dataclass_fields__
    return [MCQItem(**{k: v for k, v in r.items() if k in fields}) for r in records]


def _detect_raw_layout(spec: str, rows: list[Row]) -> bool:
    """True for MedMCQA's raw ``opa``.. + ``cop`` layout, False for ``options`` + ``answer``."""
    if not rows:
        raise MedtuneError(f"{spec}: no rows found; expected multiple-choice questions with {LAYOUT_HELP}.")
    found = columns_of(rows)
    if "question" in found and "options" in found and "answer" in found:
        return False
    if "question" in found and all(c in found for c in ("opa", "opb", "cop")):
        return True
    raise MedtuneError(
        f"{spec}: cannot read multiple-choice questions from columns {', '.join(repr(c) for c in found)}. "
        f"Accepted layouts: {LAYOUT_HELP}. Rename the columns to one of these."
    )


def _options(value: Any) -> dict[str, Any]:
    """Options as ``{letter: text}`` from a dict, a list, or JSON text of either."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _Unreadable(f"'options' is not valid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(value, list):
        return {letter: _text(text) for letter, text in zip(string.ascii_uppercase, value, strict=False)}
    if not isinstance(value, dict):
        raise _Unreadable(f"'options' is {type(value).__name__}; expected {{letter: text}} or a list")
    letters = {str(key).strip().upper(): text for key, text in value.items()}
    odd = [key for key in letters if len(key) != 1 or key not in string.ascii_uppercase]
    if odd:
        raise _Unreadable(f"option keys {', '.join(repr(k) for k in odd)} are not letters A-Z")
    return {letter: _text(letters[letter]) for letter in sorted(letters)}


def _raw_options(fields: dict[str, Any]) -> dict[str, Any]:
    """MedMCQA's ``opa``, ``opb``, ... columns as ``{letter: text}``; absent or empty trailing ones are left out."""
    present = [c for c in RAW_OPTION_COLUMNS if c in fields]
    while present and fields[present[-1]] in (None, "") and len(present) > 2:
        present.pop()  # a CSV 'ope' column left blank for four-option questions
    return {string.ascii_uppercase[i]: _text(fields[c]) for i, c in enumerate(present)}


def _text(value: Any) -> Any:
    """Numbers in options ("0.5") read as text; anything else is kept for validation to judge."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _options_problem(question: Any, options: dict[str, Any]) -> tuple[str, str] | None:
    if not isinstance(question, str) or not question.strip():
        return "empty_question", f"question is {question!r}"
    if len(options) < 2:
        return "too_few_options", f"{len(options)} option(s): {', '.join(options) or 'none'}"
    for letter, text in options.items():
        if not isinstance(text, str) or not text.strip():
            return "empty_option", f"option {letter} is {text!r}"
    return None


def _resolve_answer(value: Any, options: dict[str, str], numbered: bool) -> tuple[str | None, tuple[str, str] | None]:
    """The answer's option letter, or a ``bad_answer`` problem naming the value and the options."""
    letters = ", ".join(options)
    if numbered and (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        number = int(value)
        if isinstance(value, bool) or not 1 <= number <= len(options):
            return None, ("bad_answer", f"cop {value!r} is not an option number 1-{len(options)} (1-based)")
        return list(options)[number - 1], None
    if not isinstance(value, str) or not value.strip():
        return None, ("bad_answer", f"answer is {value!r}; expected one of the options {letters}")
    text = value.strip()
    match = _LETTER.fullmatch(text)
    if match and match.group(1).upper() in options:
        return match.group(1).upper(), None
    by_text = [letter for letter, option in options.items() if option.strip() == text]
    if by_text:
        return by_text[0], None
    if match:
        return None, ("bad_answer", f"answer {match.group(1).upper()!r} is not one of the options {letters}")
    return None, ("bad_answer", f"answer {text[:40]!r} is neither an option letter nor an option's text ({letters})")


def _class_label_answer(
    name: Any, names: list[str], options: dict[str, str], raw_layout: bool
) -> tuple[str | None, tuple[str, str] | None]:
    """The option a class-label answer names: by its label name, else by its class position.

    A name is read as an option letter (``a``/``A``), MedMCQA option column (``opa``) or option text;
    number names (``0``..``3`` or ``1``..``4``) say nothing of their base, so class ``i`` is option ``i``.
    """
    if name is None:
        return None, ("bad_answer", "the class-label answer is missing (class -1)")
    letters = list(options)
    if raw_layout and name in RAW_OPTION_COLUMNS[: len(letters)]:
        return letters[RAW_OPTION_COLUMNS.index(name)], None
    answer, _ = _resolve_answer(name, options, numbered=False)
    if answer is not None:
        return answer, None
    position = names.index(name)
    if name.strip().isdigit() and position < len(letters):
        return letters[position], None
    return None, (
        "bad_answer",
        f"class label {name!r} (class {position} of {names}) names none of the options {', '.join(letters)}",
    )


def _item(row: Row, question: str, options: dict[str, str], answer: str) -> MCQItem:
    fields = row.fields
    subject = next((fields[c] for c in ("subject", "subject_name", "topic") if _filled(fields.get(c))), None)
    explanation = next((fields[c] for c in ("explanation", "exp") if _filled(fields.get(c))), None)
    context = fields.get("context")
    if isinstance(context, list):  # some QA sets store the abstract as a list of paragraphs
        context = "\n".join(str(part) for part in context)
    return MCQItem(
        id=str(fields["id"])
        if _filled(fields.get("id"))
        else text_id(question, *(f"{k}. {v}" for k, v in options.items())),
        question=question,
        options=options,
        answer=answer,
        context=context.strip() if isinstance(context, str) and context.strip() else None,
        subject=str(subject).strip() if subject is not None else None,
        explanation=str(explanation).strip() if explanation is not None else None,
        origin=row.origin,
    )


def _filled(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())
