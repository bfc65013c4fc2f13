"""Read judgments collected elsewhere (CSV, TSV or JSONL rows of source, translation, score[, post-edit]).

The columns default to ``source``/``translation``/``score``/``post_edit``; when a default is absent,
the ``English``/``Spanish``/``feedback`` triples people already collect are recognised (any case).
Optional columns ``reviewer``, ``reference``, ``flags``, ``comment`` and ``seconds`` are kept when
present, so a file written by ``medtune feedback export`` imports back as it was.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from medtune.data.io import HF_PREFIX, Row, columns_of, decode_lines, read_rows, resolve_data_path
from medtune.errors import MedtuneError
from medtune.feedback.store import ERROR_FLAGS, FeedbackStore, ImportedJudgment, ImportRowError, item_id

ON_BAD_ROWS = ("error", "skip")
# (role, default column, the names also recognised when the default is absent, the option that sets it)
COLUMN_ROLES = (
    ("source", "source", ("english",), "--src-col"),
    ("translation", "translation", ("spanish",), "--mt-col"),
    ("score", "score", ("feedback",), "--score-col"),
    ("post_edit", "post_edit", (), "--post-edit-col"),
    ("reviewer", "reviewer", (), "--reviewer-col"),
)
OPTIONAL_ROLES = ("post_edit", "reviewer")
MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class ParsedImport:
    """The judgments a file holds, and one message per row left out (``file:line: why``)."""

    judgments: list[ImportedJudgment]
    origins: list[str]  # each judgment's ``file:line``
    skipped: list[str]
    columns: dict[str, str | None]  # role -> the column read for it (None: absent)


def read_judgment_file(
    spec: str,
    *,
    src_col: str | None = None,
    mt_col: str | None = None,
    score_col: str | None = None,
    post_edit_col: str | None = None,
    reviewer_col: str | None = None,
    score_scale: float | None = None,
) -> ParsedImport:
    """Parse a judgments file into rows for :meth:`FeedbackStore.import_judgments`.

    Args:
        spec: a ``.csv``, ``.tsv`` or ``.jsonl`` path (or ``demo:feedback_triples.csv``).
        src_col, mt_col, score_col, post_edit_col, reviewer_col: the columns; None picks the default
            name, else its recognised alternative (``English``, ``Spanish``, ``feedback``).
        score_scale: scores are on a 0..N scale: each is divided by N. Without it, scores must be in [0, 1].
    Returns:
        The good rows' judgments and their origins; each bad row (no text, a score that is not a
        number or is out of range, an unknown flag, a broken JSONL line) as ``file:line: why`` in
        :attr:`ParsedImport.skipped`, for :func:`import_parsed` to refuse or leave out.
    Raises:
        MedtuneError: unreadable file, a missing column (listing the columns found), a bad --score-scale.
    """
    if score_scale is not None and not (math.isfinite(score_scale) and score_scale > 0):
        raise MedtuneError(f"--score-scale must be a positive number (the top of the score scale), got {score_scale}.")
    rows, bad = _read_records(spec)
    if not rows and not bad:
        raise MedtuneError(f"{spec}: no rows found; expected columns source, translation and score.")
    chosen = {"source": src_col, "translation": mt_col, "score": score_col, "post_edit": post_edit_col}
    columns = _pick_columns(spec, columns_of(rows), chosen | {"reviewer": reviewer_col})
    judgments, origins = [], []
    for row in rows:
        try:
            judgments.append(_judgment(row, columns, score_scale))
        except _BadRow as exc:
            bad.append(f"{row.origin}: {exc}")
            continue
        origins.append(row.origin)
    return ParsedImport(judgments, origins, bad, columns)


def _refuse_bad_rows(spec: str, bad: list[str]) -> None:
    if not bad:
        return
    shown = "; ".join(bad[:MAX_ERRORS_SHOWN])
    more = f" (and {len(bad) - MAX_ERRORS_SHOWN} more)" if len(bad) > MAX_ERRORS_SHOWN else ""
    raise MedtuneError(
        f"{spec}: {len(bad)} bad row(s), nothing imported: {shown}{more}. Fix them, or pass --on-bad-rows skip "
        "to import the other rows."
    )


def import_parsed(
    store: FeedbackStore,
    project: str,
    parsed: ParsedImport,
    *,
    spec: str,
    default_reviewer: str = "import",
    on_bad_rows: str = "error",
) -> tuple[int, list[str]]:
    """Store the parsed judgments in one transaction; returns (imported, the rows left out, ``file:line: why``).

    A reviewer may judge a translation once: a row repeating an earlier row's (source, translation,
    reviewer), or one the store already holds, is a bad row like any other (refused with ``error``,
    left out with ``skip``).

    Args:
        on_bad_rows: ``error`` refuses the file when any row is bad (nothing is written), naming every
            bad line; ``skip`` leaves the bad rows out and returns their messages.
    Raises:
        MedtuneError: a bad ``on_bad_rows``; (``error``) the bad rows, each with its line and what was
            expected; no row left to import; a row the store refuses (nothing is written).
    """
    if on_bad_rows not in ON_BAD_ROWS:
        raise MedtuneError(f"--on-bad-rows must be one of {', '.join(ON_BAD_ROWS)}, got {on_bad_rows!r}.")
    judged = set()
    if project in store.project_names():
        judged = {(j.item_id, j.reviewer) for j in store.judgments(project)}
    keep, bad = [], list(parsed.skipped)
    for judgment, origin in zip(parsed.judgments, parsed.origins, strict=True):
        key = (item_id(project, judgment.source, judgment.translation), judgment.reviewer or default_reviewer)
        if key in judged:
            bad.append(f"{origin}: reviewer {key[1]!r} already judged this translation (an earlier row or the store)")
            continue
        judged.add(key)
        keep.append((judgment, origin))
    if on_bad_rows == "error":
        _refuse_bad_rows(spec, bad)
    if not keep:
        raise MedtuneError(f"{spec}: no row could be imported ({len(bad)} bad row(s)).")
    try:
        imported = store.import_judgments(project, [j for j, _ in keep], default_reviewer=default_reviewer)
    except ImportRowError as exc:
        raise MedtuneError(f"{keep[exc.row][1]}: {exc}; nothing imported.") from None
    return imported, bad


class _BadRow(ValueError):
    """One row's problem; the caller adds the file and line."""


def _read_records(spec: str) -> tuple[list[Row], list[str]]:
    """Rows of the file. In JSONL a line that is not a JSON object is a bad row (skippable); a CSV
    whose quoting is broken cannot be split into rows reliably, so it is refused whole."""
    path = resolve_data_path(spec) if not spec.startswith(HF_PREFIX) else None
    if path is None or not path.is_file() or path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        return read_rows(spec), []  # CSV/TSV, or the data loader's own error for a missing file or format
    rows, bad = [], []
    for number, line in enumerate(decode_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            bad.append(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            continue
        rows.append(Row(record, f"{path}:{number}"))
    return rows, bad


def _pick_columns(spec: str, found: list[str], chosen: dict[str, str | None]) -> dict[str, str | None]:
    """The column read for each role: the one named by its option, else the default, else a recognised name."""
    by_lower = {name.lower(): name for name in found}
    columns: dict[str, str | None] = {}
    for role, default, alternatives, option in COLUMN_ROLES:
        named = chosen[role]
        if named is not None:
            if named not in found:
                raise MedtuneError(
                    f"{spec}: column {named!r} (given with {option}) not found. Columns found: "
                    f"{', '.join(repr(c) for c in found)}."
                )
            columns[role] = named
            continue
        candidates = [default, *alternatives]
        columns[role] = next((by_lower[c] for c in candidates if c in by_lower), None)
        if columns[role] is None and role not in OPTIONAL_ROLES:
            raise MedtuneError(
                f"{spec}: no {role} column: expected {' or '.join(repr(c) for c in candidates)}. Columns found: "
                f"{', '.join(repr(c) for c in found)}. Name it with {option}."
            )
    for extra in ("reference", "flags", "comment", "seconds"):
        columns[extra] = by_lower.get(extra)
    return columns


def _judgment(row: Row, columns: dict[str, str | None], score_scale: float | None) -> ImportedJudgment:
    fields = row.fields

    def cell(role: str) -> Any:
        column = columns[role]
        return None if column is None else fields.get(column)

    return ImportedJudgment(
        source=_required_text(cell("source"), columns["source"]),
        translation=_required_text(cell("translation"), columns["translation"]),
        score=_score(cell("score"), columns["score"], score_scale),
        post_edit=_optional_text(cell("post_edit"), columns["post_edit"]),
        reviewer=_optional_text(cell("reviewer"), columns["reviewer"]),
        flags=_flags(cell("flags"), columns["flags"]),
        comment=_optional_text(cell("comment"), columns["comment"]),
        seconds=_seconds(cell("seconds"), columns["seconds"]),
        reference=_optional_text(cell("reference"), columns["reference"]),
    )


def _required_text(value: Any, column: str | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _BadRow(f"column {column!r} is empty or not text; expected the sentence")
    return value


def _optional_text(value: Any, column: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadRow(f"column {column!r} holds {type(value).__name__} {value!r}; expected text")
    return value


def _number(value: Any, column: str | None, what: str) -> float:
    if isinstance(value, bool) or value is None or value == "":
        raise _BadRow(f"column {column!r} is empty; expected {what}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _BadRow(f"column {column!r} holds {value!r}; expected {what}") from None
    if not math.isfinite(number):
        raise _BadRow(f"column {column!r} holds {value!r}; expected a finite number")
    return number


def _score(value: Any, column: str | None, scale: float | None) -> float:
    score = _number(value, column, "a score from 0 to 1")
    scaled = score / scale if scale else score
    if not 0 <= scaled <= 1:
        if scale:
            raise _BadRow(f"score {value} is outside 0..{scale:g} (--score-scale {scale:g})")
        raise _BadRow(f"score {value} is outside [0, 1]; if the scores are on a 0..N scale, pass --score-scale N")
    return scaled


def _seconds(value: Any, column: str | None) -> float | None:
    if value is None or value == "":
        return None
    seconds = _number(value, column, "seconds spent (a number)")
    if seconds < 0:
        raise _BadRow(f"column {column!r} holds {value!r}; time spent cannot be negative")
    return seconds


def _flags(value: Any, column: str | None) -> tuple[str, ...]:
    """A JSON list, or in CSV/TSV a string of flags separated by commas or semicolons."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items = [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise _BadRow(f"column {column!r} holds {value!r}; expected a list of error flags")
    unknown = [flag for flag in items if flag not in ERROR_FLAGS]
    if unknown:
        raise _BadRow(f"unknown error flag(s) {', '.join(map(repr, unknown))}; known: {', '.join(ERROR_FLAGS)}")
    return tuple(items)
