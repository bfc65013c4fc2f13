"""Terminology accuracy: of the glossary term occurrences in the source sentences, the share whose
target term appears in the translation.

The rules (README, "terminology accuracy"):
- Matching ignores case and accents and works on whole words: ``ear`` never matches inside
  ``year``, ``vena`` never matches ``venado``. Words separated by spaces in a term may be separated
  by any whitespace in the text; other separators (``x-ray``, ``crohn's``) must be the same.
- A source term matches in its English plurals (-s, -es, -ies, -ves, -ses) on its head word
  (``blood clot`` -> ``blood clots``, ``cup of tea`` -> ``cups of tea``) and as any glossary variant
  (``foot|feet``). A target term matches with Spanish number and gender inflection on each of its
  words, across linking words that do not inflect (``presión arterial`` -> ``presiones
  arteriales``, ``dolor de cabeza`` -> ``dolores de cabeza``), and as any variant.
- Each source occurrence is counted once: where glossary terms overlap in the source, the longest
  (in words) wins, then the leftmost, so ``heat stroke`` is not also counted as ``stroke``.
- An occurrence is found when the output holds its target at a place no other occurrence of the
  sentence claimed: targets are claimed longest first, then leftmost. A term twice in the source is
  found twice only if its target is twice in the output.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from itertools import pairwise

from medtune.data.glossary import Term
from medtune.eval.inflection import WORD, english_forms, english_head_index, normalise, spanish_forms

__all__ = ["TermCheck", "TermMatcher", "normalise", "terminology_accuracy"]


@dataclass
class TermCheck:
    """One occurrence of a glossary term in a source sentence and whether its target was found."""

    src: str
    tgt: str
    found: bool


def _squeeze(gap: str) -> str:
    """A separator without its whitespace (" " -> "", " - " -> "-")."""
    return "" if gap == " " else "".join(gap.split())


@dataclass(frozen=True)
class _Words:
    """A text as its words and the separators between them (whitespace removed: "" or "-")."""

    words: tuple[str, ...]
    gaps: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> _Words:
        """Split ``text`` as it is (normalise it first to compare folded words)."""
        spans = list(WORD.finditer(text))
        gaps = tuple(_squeeze(text[a.end() : b.start()]) for a, b in pairwise(spans))
        return cls(tuple(m.group() for m in spans), gaps)


@dataclass(frozen=True)
class _Phrase:
    """A term as the accepted forms of each of its words and the separators between them."""

    forms: tuple[frozenset[str], ...]
    gaps: tuple[str, ...]
    listed: tuple[str, ...]  # the folded words as the glossary writes them

    def matches_at(self, text: _Words, start: int) -> bool:
        """Whether ``text`` holds this phrase from word ``start``, not hyphen-joined to a neighbour."""
        end = start + len(self.forms)
        if end > len(text.words):
            return False
        # A hyphenated compound is one word: "isolation" is not in "self-isolation".
        if (start > 0 and text.gaps[start - 1] == "-") or (end < len(text.words) and text.gaps[end - 1] == "-"):
            return False
        return all(w in f for w, f in zip(text.words[start:end], self.forms, strict=True)) and (
            text.gaps[start : end - 1] == self.gaps
        )


def _english_phrase(term: str) -> _Phrase:
    words = _Words.of(normalise(term))
    head = english_head_index(list(words.words))
    forms = tuple(english_forms(w) if i == head else frozenset({w}) for i, w in enumerate(words.words))
    return _Phrase(forms, words.gaps, words.words)


def _spanish_phrase(term: str) -> _Phrase:
    # Inflect before folding: the written accent tells a stressed final syllable (inglés -> ingleses).
    words = _Words.of(unicodedata.normalize("NFC", term.casefold().replace("\u2019", "'")))
    return _Phrase(tuple(spanish_forms(w) for w in words.words), words.gaps, tuple(map(normalise, words.words)))


def _longest_first(spans: list[tuple[int, int, tuple]], once_per_rank: bool = False) -> list[tuple[int, int, tuple]]:
    """Non-overlapping ``(start, end, rank)`` spans, taking the longest, then leftmost, then lowest
    rank; with ``once_per_rank``, at most one span of each rank."""
    taken: set[int] = set()
    ranks_used: set[tuple] = set()
    chosen = []
    for start, end, rank in sorted(spans, key=lambda s: (s[0] - s[1], s[0], s[2])):
        if taken.isdisjoint(range(start, end)) and not (once_per_rank and rank in ranks_used):
            taken.update(range(start, end))
            ranks_used.add(rank)
            chosen.append((start, end, rank))
    return chosen


class TermMatcher:
    """A glossary compiled once into word-level patterns; ``check`` scores one sentence pair."""

    def __init__(self, glossary: list[Term]):
        self.terms = list(glossary)
        # A form with no letters or digits ("%") can never be matched as words: it is left out.
        self._targets = [[p for t in term.tgt_forms if (p := _spanish_phrase(t)).forms] for term in self.terms]
        # Source patterns indexed by every form of their first word: a sentence is scanned once.
        self._by_first_word: dict[str, list[tuple[int, _Phrase]]] = {}
        for index, term in enumerate(self.terms):
            for form in term.src_forms:
                phrase = _english_phrase(form)
                for first in phrase.forms[0] if phrase.forms else ():  # see _targets
                    self._by_first_word.setdefault(first, []).append((index, phrase))

    def occurrences(self, source: str) -> list[tuple[int, int, int]]:
        """The glossary terms in ``source`` as ``(first word, end word, term index)``, in order.

        Where two terms match the same words, a form the glossary lists beats an inflected one
        (``airways`` listed for itself beats the plural of ``airway``), then the earlier entry wins.
        """
        text = _Words.of(normalise(source))
        spans = [
            (start, end, (text.words[start:end] != phrase.listed, index))
            for start, word in enumerate(text.words)
            for index, phrase in self._by_first_word.get(word, ())
            if phrase.matches_at(text, start)
            for end in [start + len(phrase.forms)]
        ]
        return sorted((start, end, rank[1]) for start, end, rank in _longest_first(spans))

    def check(self, source: str, output: str) -> list[TermCheck]:
        """Each glossary term occurrence in ``source`` (in order), with whether ``output`` renders it."""
        occurrences = [index for _, _, index in self.occurrences(source)]
        if not occurrences:
            return []
        out = _Words.of(normalise(output))
        # Every place each occurrence's target could be; each occurrence then claims one place.
        candidates = [
            (start, start + len(phrase.forms), (number,))
            for number, index in enumerate(occurrences)
            for phrase in self._targets[index]
            for start, word in enumerate(out.words)
            if word in phrase.forms[0] and phrase.matches_at(out, start)
        ]
        found = {rank[0] for _, _, rank in _longest_first(candidates, once_per_rank=True)}
        return [
            TermCheck(self.terms[index].src, self.terms[index].tgt, number in found)
            for number, index in enumerate(occurrences)
        ]


def terminology_accuracy(
    sources: list[str], outputs: list[str], glossary: list[Term]
) -> tuple[float | None, int, list[list[TermCheck]]]:
    """Share of the glossary term occurrences in ``sources`` rendered in ``outputs`` (module rules).

    Returns:
        (accuracy or None when no term occurs, number of term occurrences, checks per sentence).
    Raises:
        ValueError: ``sources`` and ``outputs`` differ in length.
    """
    matcher = TermMatcher(glossary)
    per_sentence = [matcher.check(s, o) for s, o in zip(sources, outputs, strict=True)]
    checks = [c for sentence in per_sentence for c in sentence]
    if not checks:
        return None, 0, per_sentence
    return sum(c.found for c in checks) / len(checks), len(checks), per_sentence
