"""Parallel text: source/target pairs with optional document and pair ids."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from itertools import chain, islice

from medtune.data.io import COLUMN_SAMPLE, DEMO_PREFIX, Row, columns_of, iter_rows
from medtune.errors import MedtuneError


@dataclass(frozen=True)
class Pair:
    """One translation pair. ``doc`` groups sentences of the same document for splitting; ``id`` is the data's own."""

    src: str
    tgt: str
    doc: str | None = None
    origin: str = ""
    id: str | None = None

    def to_record(self) -> dict:
        return asdict(self)


def load_pairs(
    spec: str,
    src_col: str = "en",
    tgt_col: str = "es",
    doc_col: str | None = None,
    column_options: str = "--src-col/--tgt-col",
) -> list[Pair]:
    """Load parallel text from a file, a demo file or a Hugging Face dataset.

    Values are kept as found (validation decides what to do with empty or non-string cells); an
    ``id`` column, when present, gives each pair its id. ``column_options`` is how the calling
    command sets the columns, named in the error.

    Raises:
        MedtuneError: when the source or target column is missing, listing the columns found.
    """
    return list(iter_pairs(spec, src_col, tgt_col, doc_col, column_options))


def iter_pairs(
    spec: str,
    src_col: str = "en",
    tgt_col: str = "es",
    doc_col: str | None = None,
    column_options: str = "--src-col/--tgt-col",
) -> Iterator[Pair]:
    """The pairs of :func:`load_pairs` one at a time, so memory does not grow with the corpus.

    The columns are checked at once, on the first rows (as :func:`~medtune.data.io.columns_of` sees them).

    Raises:
        MedtuneError: as :func:`load_pairs`; a problem in a later row when that row is reached.
    """
    rows = iter_rows(spec)
    head = list(islice(rows, COLUMN_SAMPLE))
    if not head:
        raise MedtuneError(f"{spec}: no rows found; expected parallel text with columns '{src_col}' and '{tgt_col}'.")
    found = columns_of(head)
    missing = [c for c in (src_col, tgt_col) if c not in found]
    if missing:
        raise MedtuneError(
            f"{spec}: column(s) {', '.join(repr(c) for c in missing)} not found. Columns found: "
            f"{', '.join(repr(c) for c in found)}. Set them with {column_options}."
        )
    use_doc = doc_col if doc_col and doc_col in found else None
    return (_pair(row, src_col, tgt_col, use_doc) for row in chain(head, rows))


def pair_columns(spec: str, src_col: str, tgt_col: str, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """The source and target columns to read from ``spec``.

    A bundled ``demo:`` file is read by its own columns, named by language code (``en``, ``es``), so
    column options meant for the user's files (``English``/``Spanish``) never apply to it; every
    other source is read by ``src_col``/``tgt_col``.
    """
    return (src_lang, tgt_lang) if spec.startswith(DEMO_PREFIX) else (src_col, tgt_col)


def _pair(row: Row, src_col: str, tgt_col: str, doc_col: str | None) -> Pair:
    doc = row.fields.get(doc_col) if doc_col else None
    own_id = row.fields.get("id")
    return Pair(
        src=row.fields.get(src_col),  # type: ignore[arg-type]  # validated later
        tgt=row.fields.get(tgt_col),  # type: ignore[arg-type]
        doc=str(doc) if doc is not None else None,
        origin=row.origin,
        id=None if own_id is None or own_id == "" else str(own_id),
    )


def pairs_from_records(records: list[dict]) -> list[Pair]:
    """Rebuild pairs saved with :meth:`Pair.to_record`."""
    return [Pair(r["src"], r["tgt"], r.get("doc"), r.get("origin", ""), r.get("id")) for r in records]
