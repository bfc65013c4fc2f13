"""Terminology accuracy: case/accent-insensitive, whole words, plural endings, exact shares."""

from __future__ import annotations

import pytest

from medtune.data.glossary import Term, load_glossary
from medtune.errors import MedtuneError
from medtune.eval.terminology import TermMatcher, normalise, terminology_accuracy

GLOSSARY = [
    Term("blood pressure", "presión arterial"),
    Term("dose", "dosis"),
    Term("vaccine", "vacuna"),
    Term("ear", "oído"),
    Term("fever", "fiebre"),
]


def test_normalise_folds_case_and_accents():
    assert normalise("Presión ARTERIAL, Oído, Niño") == "presion arterial, oido, nino"


def test_accent_and_case_insensitive_match():
    checks = TermMatcher(GLOSSARY).check("Check your Blood Pressure daily.", "Controle su presion arterial a diario.")
    assert [(c.src, c.tgt, c.found) for c in checks] == [("blood pressure", "presión arterial", True)]
    checks = TermMatcher([Term("blood pressure", "presion arterial")]).check(
        "blood pressure", "Presión Arterial elevada"
    )
    assert [c.found for c in checks] == [True]


def test_term_absent_from_source_is_not_counted():
    # "fiebre" is in the output, but "fever" is not in the source: not a term occurrence.
    accuracy, count, per_sentence = terminology_accuracy(
        ["Take one dose."], ["Tome una dosis. No tiene fiebre."], GLOSSARY
    )
    assert (accuracy, count) == (1.0, 1)
    assert [c.src for c in per_sentence[0]] == ["dose"]


def test_plural_in_output_counts():
    accuracy, count, per_sentence = terminology_accuracy(
        ["Take the second dose of the vaccine.", "The vaccine works."],
        ["Tome la segunda dosis de las vacunas.", "Las vacunas funcionan."],
        GLOSSARY,
    )
    assert (accuracy, count) == (1.0, 3)
    assert [[c.src for c in s] for s in per_sentence] == [["dose", "vaccine"], ["vaccine"]]


def test_word_boundaries_on_both_sides():
    matcher = TermMatcher(GLOSSARY)
    assert matcher.check("Last year he was fine.", "El año pasado estaba bien.") == []
    assert matcher.check("Feverish and tired.", "Con fiebre y cansado.") == []
    # A longer word that only starts with the target term is not a match.
    [check] = matcher.check("A fever.", "Tiene fiebres y fiebrecilla.")
    assert check.found is True
    [check] = matcher.check("A fever.", "Tiene fiebrecilla.")
    assert check.found is False
    [check] = matcher.check("Pain in the ear.", "Dolor de oídos.")
    assert check.found is True


def test_two_of_three_terms():
    accuracy, count, per_sentence = terminology_accuracy(
        ["Her blood pressure is high and she has a fever.", "Give the vaccine."],
        ["Su presión arterial es alta y tiene calentura.", "Administre la vacuna."],
        GLOSSARY,
    )
    assert count == 3
    assert accuracy == pytest.approx(2 / 3) and round(accuracy, 4) == 0.6667
    assert [[(c.src, c.found) for c in s] for s in per_sentence] == [
        [("blood pressure", True), ("fever", False)],
        [("vaccine", True)],
    ]


def test_one_of_four_terms():
    accuracy, count, _ = terminology_accuracy(
        ["The dose for the ear.", "Fever after the vaccine."],
        ["La dosis para la oreja.", "Temperatura tras la inyección."],
        GLOSSARY,
    )
    assert (accuracy, count) == (0.25, 4)


def test_no_terms_gives_none():
    accuracy, count, per_sentence = terminology_accuracy(["Good morning."], ["Buenos días."], GLOSSARY)
    assert (accuracy, count, per_sentence) == (None, 0, [[]])
    assert terminology_accuracy([], [], GLOSSARY) == (None, 0, [])
    assert terminology_accuracy(["The fever."], ["La fiebre."], []) == (None, 0, [[]])


def test_sources_and_outputs_must_align():
    with pytest.raises(ValueError):
        terminology_accuracy(["a", "b"], ["a"], GLOSSARY)


def test_load_glossary_from_tsv(tmp_path):
    path = tmp_path / "terms.tsv"
    path.write_text("en\tes\n rash \tsarpullido\nhives\turticaria\n", encoding="utf-8")
    assert load_glossary(str(path)) == [Term("rash", "sarpullido"), Term("hives", "urticaria")]


def test_load_glossary_errors(tmp_path):
    wrong_columns = tmp_path / "cols.tsv"
    wrong_columns.write_text("english\tspanish\nrash\tsarpullido\n", encoding="utf-8")
    with pytest.raises(MedtuneError, match=r"needs columns 'en' and 'es'; found \['english', 'spanish'\]"):
        load_glossary(str(wrong_columns))
    empty_term = tmp_path / "empty.tsv"
    empty_term.write_text("en\tes\nrash\tsarpullido\nhives\t \n", encoding="utf-8")
    with pytest.raises(MedtuneError, match="empty glossary term") as err:
        load_glossary(str(empty_term))
    assert f"{empty_term}:3" in str(err.value)
