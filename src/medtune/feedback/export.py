"""Drain the feedback store: one flat record per judgment, written as JSONL or CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from medtune.errors import MedtuneError

if TYPE_CHECKING:
    from medtune.feedback.store import JudgmentView

EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_KEYS = (
    "item_id",
    "reviewer",
    "simulated",
    "score",
    "post_edit",
    "flags",
    "comment",
    "seconds",
    "created_at",
    "source",
    "translation",
    "reference",
    "model_id",
)


def judgment_record(judgment: JudgmentView) -> dict:
    """A judgment as plain JSON values, keys in :data:`EXPORT_KEYS` order; ``created_at`` in ISO 8601 UTC."""
    created = judgment.created_at
    # SQLite hands back naive datetimes; the store writes UTC.
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return {
        "item_id": judgment.item_id,
        "reviewer": judgment.reviewer,
        "simulated": judgment.simulated,
        "score": judgment.score,
        "post_edit": judgment.post_edit,
        "flags": list(judgment.flags),
        "comment": judgment.comment,
        "seconds": judgment.seconds,
        "created_at": created.isoformat(),
        "source": judgment.source,
        "translation": judgment.translation,
        "reference": judgment.reference,
        "model_id": judgment.model_id,
    }


def format_judgments(judgments: Sequence[JudgmentView], fmt: str) -> str:
    """The judgments as JSONL (one object a line) or CSV (a header, then one row each).

    In CSV, flags are joined with ``;``, booleans are ``true``/``false`` and a missing value is an
    empty cell (what ``medtune feedback import`` reads back).

    Raises:
        MedtuneError: an unknown format.
    """
    if fmt not in EXPORT_FORMATS:
        raise MedtuneError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}.")
    records = [judgment_record(j) for j in judgments]
    if fmt == "jsonl":
        return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_KEYS, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({key: _csv_cell(value) for key, value in record.items()})
    return buffer.getvalue()


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(value)
    return str(value)


def write_export(text: str, out: Path, overwrite: bool) -> None:
    """Write ``text`` to ``out`` atomically; an existing file is replaced only with ``overwrite``.

    Raises:
        MedtuneError: ``out`` exists and ``overwrite`` is off, or it is a folder.
    """
    if out.is_dir():
        raise MedtuneError(f"--out {out} is a folder; give a file path.")
    if out.exists() and not overwrite:
        raise MedtuneError(f"--out {out} already exists and is kept; choose another path or pass --overwrite.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
