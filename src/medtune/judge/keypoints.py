"""Key points of a reference answer and how many of them an answer covers.

Key points are a row's own ``key_points`` when given; otherwise the reference's content words
(stop words and one-letter words removed), its multi-word terms (two content words side by side,
e.g. "blood pressure") and the glossary terms it contains. Matching ignores case and accents, works
on whole words and accepts regular English and Spanish plurals (``medtune.eval.inflection``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import pairwise

from medtune.eval.inflection import WORD, english_forms, normalise, spanish_forms
from medtune.judge.stopwords import STOP_WORDS


def words_of(text: str) -> list[str]:
    """The folded words of a text (lower case, accents removed)."""
    return WORD.findall(normalise(text))


def _is_content(word: str) -> bool:
    return len(word) > 1 and word not in STOP_WORDS and not word.isdigit()


def derive_key_points(reference: str, glossary_terms: Iterable[str] = ()) -> list[str]:
    """The reference's content words, adjacent content-word pairs and glossary terms it contains, in order.

    Args:
        reference: the reference answer.
        glossary_terms: terms (either language) that count as one key point each when the reference holds them.
    """
    words = words_of(reference)
    points: list[str] = [w for w in words if _is_content(w)]
    points += [f"{a} {b}" for a, b in pairwise(words) if _is_content(a) and _is_content(b)]
    points += [term for term in glossary_terms if len(words_of(term)) > 1 and phrase_present(term, words)]
    return list(dict.fromkeys(points))  # each key point once


@lru_cache(maxsize=65536)
def word_forms(word: str) -> frozenset[str]:
    """A folded word with its regular English and Spanish singular/plural forms."""
    return english_forms(word) | spanish_forms(word)


def _same_word(a: str, b: str) -> bool:
    return a == b or b in word_forms(a) or a in word_forms(b)


def phrase_present(phrase: str, text_words: Sequence[str]) -> bool:
    """Whether the phrase's words occur side by side in ``text_words`` (folded), each allowing a plural form."""
    target = words_of(phrase)
    if not target:
        return False
    span = len(target)
    return any(
        all(_same_word(t, w) for t, w in zip(target, text_words[start : start + span], strict=True))
        for start in range(len(text_words) - span + 1)
    )


def coverage(answer: str, key_points: Sequence[str]) -> tuple[float, list[str]]:
    """The share of ``key_points`` present in ``answer``, and the missing ones.

    Returns ``(1.0, [])`` when there are no key points: nothing is missing.
    """
    if not key_points:
        return 1.0, []
    answer_words = words_of(answer)
    missing = [point for point in key_points if not phrase_present(point, answer_words)]
    return (len(key_points) - len(missing)) / len(key_points), missing
