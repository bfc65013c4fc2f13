"""Glossary terms in a source sentence, as character spans the reviewer page highlights.

Matching follows the terminology metric's rules (:class:`medtune.eval.terminology.TermMatcher`:
whole words, case and accents ignored, English plurals, listed variants, longest match wins), so
the page highlights exactly the occurrences the terminology accuracy counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from medtune.data.glossary import Term
from medtune.eval.inflection import WORD, normalise
from medtune.eval.terminology import TermMatcher


@dataclass(frozen=True)
class TermSpan:
    """One glossary term found in a source: the glossary's English and expected Spanish term, and
    where it stands in the source as ``source[start:end]`` (Python string indices, i.e. code points)."""

    en: str
    es: str
    start: int
    end: int

    def as_json(self) -> dict:
        """The span as the JSON object ``GET /api/next`` returns in ``terms``."""
        return asdict(self)


class GlossaryHighlighter:
    """A glossary compiled once; ``terms_in`` finds its terms in one source sentence."""

    def __init__(self, glossary: Sequence[Term]):
        self.matcher = TermMatcher(list(glossary)) if glossary else None

    def terms_in(self, source: str) -> list[TermSpan]:
        """The glossary terms in ``source``, left to right, without overlaps."""
        if self.matcher is None:
            return []
        words = list(WORD.finditer(source))
        # The matcher counts words in the normalised text; folding can split a word ("½" -> "1⁄2"),
        # and then word positions no longer map back to the source, so nothing is highlighted.
        if len(words) != len(WORD.findall(normalise(source))):
            return []
        terms = self.matcher.terms
        return [
            TermSpan(terms[index].src, terms[index].tgt, words[first].start(), words[end - 1].end())
            for first, end, index in self.matcher.occurrences(source)
        ]
