"""Terminology accuracy: of the glossary terms found in a source sentence, the share whose target
term appears in the translation. Matching ignores case and accents; terms match at word
boundaries, and a target term may carry a plural ending (-s/-es) in the output."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from medtune.data.glossary import Term


def normalise(text: str) -> str:
    """Lower-case and strip accents (``Presión`` -> ``presion``)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass
class TermCheck:
    src: str
    tgt: str
    found: bool


class TermMatcher:
    """Pre-compiled patterns for one glossary."""

    def __init__(self, glossary: list[Term]):
        self.entries = [
            (
                term,
                re.compile(rf"(?<!\w){re.escape(normalise(term.src))}(?!\w)"),
                re.compile(rf"(?<!\w){re.escape(normalise(term.tgt))}(?:s|es)?(?!\w)"),
            )
            for term in glossary
        ]

    def check(self, source: str, output: str) -> list[TermCheck]:
        """The glossary terms present in ``source``, each with whether its translation is in ``output``."""
        src, out = normalise(source), normalise(output)
        return [
            TermCheck(t.src, t.tgt, bool(tgt_re.search(out)))
            for t, src_re, tgt_re in self.entries
            if src_re.search(src)
        ]


def terminology_accuracy(
    sources: list[str], outputs: list[str], glossary: list[Term]
) -> tuple[float | None, int, list[list[TermCheck]]]:
    """Share of source-present glossary terms rendered correctly.

    Returns:
        (accuracy or None when no term occurs, number of term occurrences, checks per sentence).
    """
    matcher = TermMatcher(glossary)
    per_sentence = [matcher.check(s, o) for s, o in zip(sources, outputs, strict=True)]
    checks = [c for sentence in per_sentence for c in sentence]
    if not checks:
        return None, 0, per_sentence
    return sum(c.found for c in checks) / len(checks), len(checks), per_sentence
