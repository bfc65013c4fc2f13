"""The surface forms a glossary term can take in running text: English plurals of a source term,
Spanish number and gender inflections of every word of a target term.

Forms are generated, not looked up: every word's forms are a small set, and a generated form that
is not a real word ("diabeteses") is harmless because it never occurs in text. Irregular forms
(``foot|feet``) come from glossary variants. Our own rules because no maintained library gives
all the forms of a word (both numbers, both genders) for Spanish, and English needs only a few.
"""

from __future__ import annotations

import re
import unicodedata

# A term is matched word by word; words are runs of letters/digits (hyphens and apostrophes split).
WORD = re.compile(r"\w+")

# Words that link a head to its complement and do not inflect ("dolor de cabeza", "mothers-in-law").
ENGLISH_LINKING = frozenset(
    {
        "about",
        "after",
        "against",
        "at",
        "before",
        "by",
        "for",
        "from",
        "in",
        "into",
        "of",
        "on",
        "per",
        "to",
        "under",
        "with",
        "without",
    }
)
SPANISH_LINKING = frozenset(
    {
        "a",
        "al",
        "con",
        "contra",
        "de",
        "del",
        "desde",
        "e",
        "el",
        "en",
        "entre",
        "hacia",
        "hasta",
        "la",
        "las",
        "lo",
        "los",
        "no",
        "o",
        "para",
        "por",
        "sin",
        "sobre",
        "tras",
        "u",
        "un",
        "una",
        "y",
    }
)
# A vowel group is one syllable, except that an accented í/ú stands alone (v-í-as, pa-ís).
_SPANISH_SYLLABLE = re.compile(r"[íú]|[aeiouáéóü]+")


def _syllables(word: str) -> int:
    """Syllables of a lower-case Spanish word, near enough to tell one from several."""
    return len(_SPANISH_SYLLABLE.findall(word))


def normalise(text: str) -> str:
    """Lower-case, strip accents and unify apostrophes (``Presión`` -> ``presion``)."""
    text = text.casefold()
    if text.isascii():  # most English text: nothing to strip
        return text
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def english_head_index(words: list[str]) -> int:
    """Index of the word an English term pluralises: the last one, or the one before a linking
    word (``blood clot`` -> ``clot``, ``cup of tea`` -> ``cup``)."""
    for i, word in enumerate(words[1:], start=1):
        if word in ENGLISH_LINKING:
            return i - 1
    return len(words) - 1


def english_forms(word: str) -> frozenset[str]:
    """A folded English noun and its regular plurals: -s, -es (s/x/z/ch/sh/o), consonant+y -> -ies,
    -sis -> -ses, -f/-fe -> -ves. Words with digits ("t4") stay as they are."""
    forms = {word}
    if not word.isalpha():
        return frozenset(forms)
    if word.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(word + "es")
    elif word.endswith("y") and len(word) > 1 and word[-2] not in "aeiou":
        forms.add(word[:-1] + "ies")
    else:
        forms.add(word + "s")
    if word.endswith("o"):
        forms.add(word + "es")
    if word.endswith("sis"):
        forms.add(word[:-2] + "es")
    if word.endswith("fe"):
        forms.add(word[:-2] + "ves")
    elif word.endswith("f"):
        forms.add(word[:-1] + "ves")
    return frozenset(forms)


def _stressed_last_vowel(word: str) -> bool:
    """Whether the last vowel of an accented lower-case word carries a written accent (inglés)."""
    for ch in reversed(word):
        base = normalise(ch)
        if base in ("a", "e", "i", "o", "u"):
            return base != ch
    return False


def _spanish_inflections(word: str, stressed_final: bool, syllables: int) -> set[str]:
    """Number and gender forms of a folded Spanish word taken as singular."""
    if word[-1] in "oa":
        stem = word[:-1]
        return {stem + "o", stem + "a", stem + "os", stem + "as"}
    if word[-1] in "eiu":
        return {word, word + "s", word + "es"} if word[-1] in "iu" else {word, word + "s"}
    if word[-1] == "z":
        return {word, word[:-1] + "ces"}
    if word[-1] in "sx":
        # Unstressed -is/-sis/-us/-x are the same in the plural (análisis, virus, tórax).
        if not (stressed_final or syllables == 1):
            return {word}
        forms = {word, word + "es"}
        if word.endswith("es") and stressed_final:
            forms |= {word + "a", word + "as"}  # inglés -> inglesa
        return forms
    forms = {word, word + "es"}  # presión -> presiones, arterial -> arteriales, ley -> leyes
    if word.endswith("or"):
        forms |= {word + "a", word + "as"}  # doctor -> doctora (not -ón -> -ona: "presiona" is a verb)
    return forms


def _spanish_singulars(word: str, syllables: int) -> list[str]:
    """Singulars a folded word ending in unstressed -s may be the plural of (pulmones -> pulmón)."""
    if syllables < 2 or word.endswith(("is", "us")):
        return []
    if word.endswith(("os", "as")):
        return [word[:-1]]
    if word.endswith("ces"):
        return [word[:-3] + "z", word[:-1]]
    if word.endswith("es"):
        return [word[:-2], word[:-1]]
    return []


def spanish_forms(word: str) -> frozenset[str]:
    """A Spanish word (lower-case, accents kept) and its folded number and gender forms.

    -o/-a/-os/-as, vowel + s, consonant + es, -z -> -ces, -or -> -ora, stressed -és -> -esa;
    unstressed -is/-us/-x invariant; a plural (``pulmones``) also matches its singular. Linking
    words (``de``, ``la``) and words with digits stay as they are.
    """
    folded = normalise(word)
    if folded in SPANISH_LINKING or not folded.isalpha():
        return frozenset({folded})
    stressed_final, syllables = _stressed_last_vowel(word), _syllables(word)
    forms = {folded} | _spanish_inflections(folded, stressed_final, syllables)
    if folded.endswith("s") and not stressed_final:
        for singular in _spanish_singulars(folded, syllables):
            forms |= _spanish_inflections(singular, stressed_final=False, syllables=_syllables(singular))
    return frozenset(forms)
