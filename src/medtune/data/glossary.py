"""A bilingual term glossary (source term -> target term) for terminology accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from medtune.data.io import columns_of, read_rows
from medtune.errors import MedtuneError


@dataclass(frozen=True)
class Term:
    src: str
    tgt: str


def load_glossary(spec: str, src_col: str = "en", tgt_col: str = "es") -> list[Term]:
    """Load a glossary from JSONL/CSV/TSV with one term pair per row (columns ``en``/``es``).

    Raises:
        MedtuneError: missing columns (listing those found) or an empty term (with its line).
    """
    rows = read_rows(spec)
    found = columns_of(rows)
    if src_col not in found or tgt_col not in found:
        raise MedtuneError(f"{spec}: a glossary needs columns '{src_col}' and '{tgt_col}'; found {found}.")
    terms = []
    for row in rows:
        src, tgt = row.fields.get(src_col), row.fields.get(tgt_col)
        if not isinstance(src, str) or not src.strip() or not isinstance(tgt, str) or not tgt.strip():
            raise MedtuneError(f"{row.origin}: empty glossary term ({src!r} -> {tgt!r}).")
        terms.append(Term(src.strip(), tgt.strip()))
    return terms
