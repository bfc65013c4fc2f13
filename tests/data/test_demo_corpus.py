"""The bundled demo corpora meet their spec: size, variety, glossary coverage, faithful numbers."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import cache

import pytest

from medtune.data.glossary import load_glossary
from medtune.data.io import read_rows
from medtune.data.parallel import load_pairs
from medtune.data.validate import validate_pairs
from medtune.eval.terminology import terminology_accuracy

MEDICAL = "demo:medical_en_es.jsonl"
GENERAL = "demo:general_en_es.jsonl"
GLOSSARY = "demo:glossary_en_es.tsv"


@cache
def _rows(spec: str):
    return read_rows(spec)


def _fold(text: str) -> str:
    """Lower-case, accents removed."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def _word_pattern(phrase: str, plural: bool = False) -> re.Pattern[str]:
    """Matches the folded phrase as whole words, optionally with a plural ending (-s/-es)."""
    ending = "(?:s|es)?" if plural else ""
    return re.compile(rf"(?<!\w){re.escape(_fold(phrase))}{ending}(?!\w)")


def test_medical_corpus_size_genres_and_documents():
    rows = _rows(MEDICAL)
    assert len(rows) >= 400
    assert all({"en", "es", "doc_id", "genre"} <= set(r.fields) for r in rows), "every row needs en, es, doc_id, genre"
    genres = {r.fields["genre"] for r in rows}
    assert len(genres) >= 6, genres
    sentences_per_doc = Counter(r.fields["doc_id"] for r in rows)
    assert all(isinstance(d, str) and d for d in sentences_per_doc)
    short_docs = {d: n for d, n in sentences_per_doc.items() if n < 3}
    assert not short_docs, f"documents with fewer than 3 sentences: {short_docs}"


def test_each_document_has_one_genre():
    genres_of: dict[str, set[str]] = {}
    for r in _rows(MEDICAL):
        genres_of.setdefault(r.fields["doc_id"], set()).add(r.fields["genre"])
    assert {d: g for d, g in genres_of.items() if len(g) > 1} == {}


def test_general_corpus_size():
    rows = _rows(GENERAL)
    assert len(rows) >= 120
    assert all(isinstance(r.fields.get("en"), str) and isinstance(r.fields.get("es"), str) for r in rows)


def test_general_and_medical_share_no_sentence():
    medical = {r.fields["en"] for r in _rows(MEDICAL)}
    shared = [r.origin for r in _rows(GENERAL) if r.fields["en"] in medical]
    assert shared == []


def test_glossary_size():
    terms = load_glossary(GLOSSARY)
    assert len(terms) >= 150
    repeated = [t for t, n in Counter(_fold(form) for t in terms for form in t.src_forms).items() if n > 1]
    assert repeated == []


def test_references_render_their_own_terms():
    """The reference translations, scored as if they were outputs, find nearly every term: what
    they miss is a paraphrase ("dolor o presión en el pecho"), not a matching rule."""
    rows = _rows(MEDICAL)
    sources, references = [r.fields["en"] for r in rows], [r.fields["es"] for r in rows]
    accuracy, occurrences, per_sentence = terminology_accuracy(sources, references, load_glossary(GLOSSARY))
    missed = [
        f"{c.src} -> {c.tgt}: {ref}"
        for ref, checks in zip(references, per_sentence, strict=True)
        for c in checks
        if not c.found
    ]
    assert occurrences >= 550
    assert accuracy >= 0.99, "\n".join(missed)


def test_every_glossary_term_pair_occurs_in_a_demo_pair():
    pairs = [(_fold(r.fields["en"]), _fold(r.fields["es"])) for r in _rows(MEDICAL)]
    missing = []
    for term in load_glossary(GLOSSARY):
        src_re, tgt_re = _word_pattern(term.src), _word_pattern(term.tgt, plural=True)
        if not any(src_re.search(en) and tgt_re.search(es) for en, es in pairs):
            missing.append(f"{term.src} -> {term.tgt}")
    assert missing == [], f"glossary terms with no medical pair holding both sides: {missing}"


@pytest.mark.parametrize("spec", [MEDICAL, GENERAL])
def test_numbers_in_english_appear_in_spanish(spec):
    offenders = []
    for r in _rows(spec):
        es_numbers = set(re.findall(r"\d+", r.fields["es"]))
        lost = [n for n in re.findall(r"\d+", r.fields["en"]) if n not in es_numbers]
        if lost:
            offenders.append(f"{r.origin}: {lost} missing from {r.fields['es']!r}")
    assert offenders == [], "\n".join(offenders)


@pytest.mark.parametrize("spec", [MEDICAL, GENERAL])
def test_no_translation_identical_to_source(spec):
    same = [r.origin for r in _rows(spec) if _fold(r.fields["en"].strip()) == _fold(r.fields["es"].strip())]
    assert same == []


@pytest.mark.parametrize("spec", [MEDICAL, GENERAL])
def test_demo_data_passes_validation_with_zero_issues(spec):
    pairs = load_pairs(spec, doc_col="doc_id")
    kept, report = validate_pairs(pairs, spec, on_bad_rows="fail")
    assert report.issues == []
    assert len(kept) == len(pairs) == report.total == report.kept
