"""Plain documents for continued pre-training: one :class:`Document` per paragraph, file or row.

Sources: a ``.txt`` file (documents separated by blank lines), a folder of ``.txt`` files (one document
each), or JSONL/CSV/TSV/``demo:``/``hf:`` data with a text column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Any

from medtune.data.digest import TextDigests
from medtune.data.io import COLUMN_SAMPLE, HF_PREFIX, Row, columns_of, iter_lines, iter_rows, resolve_data_path
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
    checks = DocumentChecks(name, text_col)
    kept = [doc for doc in map(checks.check, iter_text_rows(spec, text_col)) if doc is not None]
    report = checks.finish(on_bad_rows)
    log(report.summary())
    return kept, report


class DocumentChecks:
    """:func:`load_documents`'s validation one row at a time, for corpora read as a stream: ``check``
    each row in order, then ``finish``. Holds a 16-byte digest per kept document, never the text."""

    def __init__(self, name: str, text_col: str = "text") -> None:
        self.report = ValidationReport(name=name, unit="documents")
        self.text_col = text_col
        self._seen = TextDigests()  # digests, not the documents: a 1 GB corpus is not held twice
        self._kept = 0

    def check(self, row: Row) -> Document | None:
        """The row's document (text stripped), or None when it is dropped (the problem goes into the report)."""
        self.report.total += 1
        text = row.fields.get(self.text_col)
        if not isinstance(text, str) or not text.strip():
            self.report.issues.append(Issue(row.origin, "empty_text", f"{self.text_col} is {text!r}"))
            return None
        text = text.strip()
        if text in self._seen:
            self.report.issues.append(Issue(row.origin, "duplicate_row", repr(text[:40])))
            return None
        self._seen.add(text)
        self._kept += 1
        doc_id = row.fields.get("id")
        return Document(text, None if doc_id in (None, "") else str(doc_id), row.origin)

    def finish(self, on_bad_rows: str) -> ValidationReport:
        """The report, once every row was checked, after the ``data.on_bad_rows`` policy.

        Raises:
            MedtuneError: as :func:`~medtune.data.validate.enforce_bad_row_policy`.
        """
        enforce_bad_row_policy(self.report, self._kept, on_bad_rows)
        return self.report


def documents_from_records(records: list[dict]) -> list[Document]:
    """Rebuild documents saved with :meth:`Document.to_record`."""
    return [Document(r["text"], r.get("id"), r.get("origin", "")) for r in records]


def split_paragraphs(path: Path, text_col: str = "text") -> list[Row]:
    """The documents of a ``.txt`` file: runs of non-blank lines, each with the origin of its first line.

    Raises:
        MedtuneError: the file is not UTF-8 (naming the line).
    """
    return list(iter_paragraphs(path, text_col))


def iter_paragraphs(path: Path, text_col: str = "text") -> Iterator[Row]:
    """:func:`split_paragraphs` one document at a time."""
    block: list[str] = []
    start = 0
    for number, line in enumerate(chain(iter_lines(path), [""]), start=1):  # the "" closes the last block
        if line.strip():
            start = start or number
            block.append(line)
        elif block:
            yield Row({text_col: "\n".join(block)}, f"{path}:{start}")
            block, start = [], 0


def iter_text_rows(spec: str, text_col: str) -> Iterator[Row]:
    """Rows with the text under ``text_col``, whatever the source, one at a time (a folder's files are
    read one by one). The checks that need no reading (the folder has ``.txt`` files, the file exists,
    the text column is among the first rows' columns) run at once.

    Raises:
        MedtuneError: as :func:`load_documents`.
    """
    path = None if spec.startswith(HF_PREFIX) else resolve_data_path(spec)
    if path is not None and path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise MedtuneError(f"{path}: the folder has no .txt files. Put one document per .txt file in it.")
        return (Row({text_col: "\n".join(iter_lines(f)), "id": f.name}, f"{f}:1") for f in files)
    if path is not None and path.suffix.lower() == ".txt":
        if not path.is_file():
            raise MedtuneError(f"Text file not found: {path}. Check the path (relative to {Path.cwd()}).")
        paragraphs = iter_paragraphs(path, text_col)
        first = next(paragraphs, None)
        if first is None:
            raise MedtuneError(f"{path}: the file has no text; expected documents separated by blank lines.")
        return chain([first], paragraphs)
    rows = iter_rows(spec)
    head = list(islice(rows, COLUMN_SAMPLE))
    if not head:
        raise MedtuneError(f"{spec}: no rows found; expected documents in a column '{text_col}'.")
    found = columns_of(head)
    if text_col not in found:
        raise MedtuneError(
            f"{spec}: no text column '{text_col}'. Columns found: {', '.join(repr(c) for c in found)}. "
            "Name the column holding the documents as the text column (text_col), or use a .txt file or a "
            "folder of .txt files."
        )
    return chain(head, rows)
