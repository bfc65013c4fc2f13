"""Reading the chosen option letter out of a model's free-text reply to a multiple-choice question.

Replies come in many shapes ("Answer: C", "(c)", "**C**", "The answer is C", "Option C", or the
option's own words). Cues are tried from the most to the least explicit; within one cue, a reply
that names two different letters is ambiguous and yields no answer rather than a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_MARKDOWN = re.compile(r"[*_`#]+")
# A letter after an explicit answer cue: "Answer: C", "answer is (c)", "correct option is C".
_ANSWER_CUE = re.compile(
    r"\b(?:answer|correct\s+(?:option|choice)|right\s+(?:option|choice))\s*(?:is|would\s+be|:|=|-)?\s*"
    r"(?:option|choice|letter)?\s*[:\-]?\s*\(?([A-Za-z])(?![\w'])",
    re.IGNORECASE,
)
_OPTION_CUE = re.compile(r"\b(?:option|choice)\s*\(?([A-Za-z])(?![\w'])", re.IGNORECASE)
# A reply that starts with the letter: "C", "C.", "(C)", "c)", "C: ...", "C - ...".
_LEADING = re.compile(r"^\(?([A-Za-z])(?:\s*[).:\]]|\s+-|\s*$)")
# Another letter joined to the one just read: "A or C", "B and D", "A/C", "A, C".
_JOINED = re.compile(r"^\)?\s*[.:]?\s*(?:,|/|&|\bor\b|\band\b)\s*(?:option\s*)?\(?([A-Za-z])(?![\w'])", re.IGNORECASE)
_STANDALONE = re.compile(r"(?<![\w'])\(?([A-Z])\)?(?![\w'])")
_WORDS = re.compile(r"[^\w]+")


def extract_letter(text: str, options: Iterable[str]) -> str | None:
    """The option letter a reply chooses, or ``None`` when it names none or several.

    Args:
        text: the generated reply (what follows ``Answer:`` in the prompt, or a whole reply).
        options: the question's option letters, e.g. ``"ABCD"`` or a ``{letter: text}`` dict; when a
            dict is given, a reply that starts with an option's text also counts as that option.
    Returns:
        An upper-case letter among ``options``, or ``None`` for an empty, unparsable or ambiguous
        reply (e.g. "A or C").
    """
    texts = dict(options) if isinstance(options, dict) else {}
    letters = {str(letter).upper() for letter in options}
    clean = " ".join(_MARKDOWN.sub("", text).split())
    if not clean:
        return None
    for read in (_by_answer_cue, _by_leading_letter, _by_option_cue):
        found = read(clean, letters)
        if found is not None:
            return found or None  # "" marks an ambiguous reply: stop looking
    by_text = _by_option_text(clean, texts)
    if by_text is not None:
        return by_text
    return _by_standalone_letter(clean, letters) or None


def _unique(matches: Iterable[re.Match], clean: str, letters: set[str], lower_ok: bool) -> str | None:
    """One letter if all matches agree, ``""`` if they name several (or are joined), ``None`` if none."""
    named: set[str] = set()
    for match in matches:
        letter = match.group(1)
        after = clean[match.end() :]
        if letter.islower() and not (lower_ok or re.match(r"^\s*[).:\]]|^\s*$", after)):
            continue  # a lone lower-case word such as "a" in "answer is a bit unclear"
        if letter.upper() not in letters:
            continue
        named.add(letter.upper())
        joined = _JOINED.match(after)
        if joined and joined.group(1).upper() in letters and joined.group(1).upper() != letter.upper():
            return ""
    if len(named) > 1:
        return ""
    return named.pop() if named else None


def _by_answer_cue(clean: str, letters: set[str]) -> str | None:
    return _unique(_ANSWER_CUE.finditer(clean), clean, letters, lower_ok=False)


def _by_leading_letter(clean: str, letters: set[str]) -> str | None:
    match = _LEADING.match(clean)
    if match is None:
        return None
    if match.group(1).islower() and not re.match(r"^\(?[a-z](?:[).]|\s*$)", clean):
        return None  # "a)" or "(a)" names option a; "a: ..." or "a - ..." is more likely prose
    return _unique([match], clean, letters, lower_ok=True)


def _by_option_cue(clean: str, letters: set[str]) -> str | None:
    return _unique(_OPTION_CUE.finditer(clean), clean, letters, lower_ok=True)


def _by_option_text(clean: str, texts: dict[str, str]) -> str | None:
    """The option whose words open the reply (the longest such option when several do)."""
    reply = " ".join(_WORDS.sub(" ", clean.lower()).split())
    best, best_len = None, 0
    for letter, option in texts.items():
        words = " ".join(_WORDS.sub(" ", str(option).lower()).split())
        if words and (reply == words or reply.startswith(words + " ")) and len(words) > best_len:
            best, best_len = str(letter).upper(), len(words)
    return best


def _by_standalone_letter(clean: str, letters: set[str]) -> str | None:
    """A capital letter standing alone anywhere ("I think B"), unless several are named."""
    named = set()
    for match in _STANDALONE.finditer(clean):
        letter = match.group(1)
        following = clean[match.end() :]
        if letter in ("A", "I") and re.match(r"^\s+(?!(?:or|and)\b)[a-z]", following) and "(" not in match.group(0):
            continue  # the article "A patient" or the pronoun "I think"
        if letter in letters:
            named.add(letter)
    return named.pop() if len(named) == 1 else None


def last_cued_letter(text: str, options: Iterable[str]) -> str | None:
    """The letter after the last explicit answer cue ("the answer is C"), for replies that change their mind."""
    letters = {str(letter).upper() for letter in options}
    clean = " ".join(_MARKDOWN.sub("", text).split())
    cued = [m.group(1) for m in _ANSWER_CUE.finditer(clean) if m.group(1).isupper() and m.group(1) in letters]
    return cued[-1] if cued else None
