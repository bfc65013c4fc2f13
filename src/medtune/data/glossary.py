"""A bilingual term glossary (source term -> target term) for terminology accuracy.

Each cell holds a term, optionally followed by variants written the same way the term may appear:
``foot|feet`` (an irregular plural), ``tos ferina|tosferina`` (a spelling). The first form is the
term's name in reports; regular inflections (plurals, gender) need no variant, they are matched
by :mod:`medtune.eval.terminology`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medtune.data.io import columns_of, read_rows
from medtune.errors import MedtuneError

VARIANT_SEPARATOR = "|"
_WORD_CHARACTER = re.compile(r"\w")


@dataclass(frozen=True)
class Term:
    """One glossary entry: the source and target term, each with its listed variants."""

    src: str
    tgt: str
    src_variants: tuple[str, ...] = ()
    tgt_variants: tuple[str, ...] = ()

    @property
    def src_forms(self) -> tuple[str, ...]:
        """The source term followed by its variants."""
        return (self.src, *self.src_variants)

    @property
    def tgt_forms(self) -> tuple[str, ...]:
        """The target term followed by its variants."""
        return (self.tgt, *self.tgt_variants)


def parse_variants(cell: str, where: str, column: str) -> tuple[str, ...]:
    """Split a glossary cell ``term|variant|variant`` into its stripped forms, term first.

    Raises:
        MedtuneError: an empty variant (``a||b``, a leading or trailing ``|``) or a form with no
            letter or digit, naming ``where`` (``file:line``) and the column.
    """
    forms = tuple(part.strip() for part in cell.split(VARIANT_SEPARATOR))
    if not all(forms):
        raise MedtuneError(
            f"{where}: column '{column}' holds {cell!r}, which has an empty variant. Write a term and "
            f"its variants as 'term|variant|variant', with no empty part and no leading or trailing '|'."
        )
    if not all(_WORD_CHARACTER.search(form) for form in forms):
        raise MedtuneError(
            f"{where}: column '{column}' holds {cell!r}; every term and variant needs a letter or digit "
            "to be matched as words."
        )
    return tuple(dict.fromkeys(forms))  # a variant listed twice counts once


def load_glossary(spec: str, src_col: str = "en", tgt_col: str = "es") -> list[Term]:
    """Load a glossary from JSONL/CSV/TSV with one term pair per row (columns ``en``/``es``).

    A cell may list variants after the term: ``foot|feet``.

    Raises:
        MedtuneError: missing columns (listing those found), an empty term or an unparseable variant
            list (with its ``file:line``).
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
        src_forms = parse_variants(src, row.origin, src_col)
        tgt_forms = parse_variants(tgt, row.origin, tgt_col)
        terms.append(Term(src_forms[0], tgt_forms[0], src_forms[1:], tgt_forms[1:]))
    return terms
