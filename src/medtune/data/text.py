"""Plain documents for continued pre-training: one :class:`Document` per paragraph, file or row.

Sources: a ``.txt`` file (documents separated by blank lines), a folder of ``.txt`` files (one document
each), or JSONL/CSV/TSV/``demo:``/``hf:`` data with a text column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medtune.data.digest import TextDigests
from medtune.data.io import HF_PREFIX, Row, columns_of, decode_lines, read_rows, resolve_data_path
from medtune.data.validate import Issue, ValidationReport, enforce_bad_row_policy
from medtune.errors import MedtuneError


@dataclass(frozen=True)
class Document:
    """One validated document (stripped, non-empty text)."""

    text: str
    id: str | None = None
    origin: str = ""

    def to_record(self) -> dict:
        """A JSON-ready dict; :func:`documents_from_records` rebuilds the document."""
        return asdict(self)


def load_documents(
    spec: str,
    text_col: str = "text",
    on_bad_rows: str = "skip",
    name: str = "text",
    log: Callable[[str], Any] = print,
) -> tuple[list[Document], ValidationReport]:
    """Read and validate documents.

    Args:
        spec: a ``.txt`` file (blank lines separate documents; the lines of one document are joined
            with "\\n"), a folder (every ``*.txt`` directly inside it, sorted, one document per file,
            id = file name), or JSONL/CSV/TSV/``demo:<file>``/``hf:<dataset>[:split]`` data.
        text_col: the column holding the text in JSONL/CSV/TSV data; ``id`` is used when present.
        on_bad_rows: ``skip`` drops empty and duplicate documents with a report; ``fail`` raises.
        name: label for messages and the report.
        log: receives the validation summary.
    Returns:
        The kept documents (text stripped), each with its ``file:line`` origin, and the report.
    Raises:
        MedtuneError: missing file or folder, no ``.txt`` in a folder, bad UTF-8 (with the line),
            ``text_col`` not among the columns (listing them), ``fail`` with any bad row, or nothing left.
    """
    rows = _read_text_rows(spec, text_col)
    report = ValidationReport(name=name, total=len(rows), unit="documents")
    kept: list[Document] = []
    seen = TextDigests()  # digests, not the documents: a 1 GB corpus is not held twice
    for row in rows:
        text = row.fields.get(text_col)
        if not isinstance(text, str) or not text.strip():
            report.issues.append(Issue(row.origin, "empty_text", f"{text_col} is {text!r}"))
            continue
        text = text.strip()
        if text in seen:
            report.issues.append(Issue(row.origin, "duplicate_row", repr(text[:40])))
            continue
        seen.add(text)
        doc_id = row.fields.get("id")
        kept.append(Document(text, None if doc_id in (None, "") else str(doc_id), row.origin))
    enforce_bad_row_policy(report, len(kept), on_bad_rows)
    log(report.summary())
    return kept, report


def documents_from_records(records: list[dict]) -> list[Document]:
    """Rebuild documents saved with :meth:`Document.to_record`."""
    return [Document(r["text"], r.get("id"), r.get("origin", "")) for r in records]


def split_paragraphs(path: Path, text_col: str = "text") -> list[Row]:
    """The documents of a ``.txt`` file: runs of non-blank lines, each with the origin of its first line.

    Raises:
        MedtuneError: the file is not UTF-8 (naming the line).
    """
    rows: list[Row] = []
    block: list[str] = []
    start = 0
    for number, line in enumerate([*decode_lines(path), ""], start=1):  # the "" closes the last block
        if line.strip():
            start = start or number
            block.append(line)
        elif block:
            rows.append(Row({text_col: "\n".join(block)}, f"{path}:{start}"))
            block, start = [], 0
    return rows


def _read_text_rows(spec: str, text_col: str) -> list[Row]:
    """Rows with the text under ``text_col``, whatever the source."""
    path = None if spec.startswith(HF_PREFIX) else resolve_data_path(spec)
    if path is not None and path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise MedtuneError(f"{path}: the folder has no .txt files. Put one document per .txt file in it.")
        return [Row({text_col: "\n".join(decode_lines(f)), "id": f.name}, f"{f}:1") for f in files]
    if path is not None and path.suffix.lower() == ".txt":
        if not path.is_file():
            raise MedtuneError(f"Text file not found: {path}. Check the path (relative to {Path.cwd()}).")
        rows = split_paragraphs(path, text_col)
        if not rows:
            raise MedtuneError(f"{path}: the file has no text; expected documents separated by blank lines.")
        return rows
    rows = read_rows(spec)
    if not rows:
        raise MedtuneError(f"{spec}: no rows found; expected documents in a column '{text_col}'.")
    found = columns_of(rows)
    if text_col not in found:
        raise MedtuneError(
            f"{spec}: no text column '{text_col}'. Columns found: {', '.join(repr(c) for c in found)}. "
            "Name the column holding the documents as the text column (text_col), or use a .txt file or a "
            "folder of .txt files."
        )
    return rows
