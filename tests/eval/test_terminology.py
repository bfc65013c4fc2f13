"""Terminology accuracy: case/accent-insensitive whole words, English plurals, Spanish number and
gender on every word, glossary variants, no double counting, exact shares."""

from __future__ import annotations

import pytest
from cli_checks import assert_user_error
from typer.testing import CliRunner

from medtune.cli import app
from medtune.data.glossary import Term, load_glossary
from medtune.errors import MedtuneError
from medtune.eval.inflection import english_forms, english_head_index, spanish_forms
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


def _found(matcher: TermMatcher, source: str, output: str) -> list[tuple[str, bool]]:
    return [(c.src, c.found) for c in matcher.check(source, output)]


# --- English source terms: plurals on the head word, irregulars as glossary variants ---


@pytest.mark.parametrize(
    ("term", "sentence"),
    [
        ("vaccine", "Two vaccines are offered."),  # -s
        ("rash", "Rashes may appear."),  # -es after sh
        ("stitch", "The stitches come out."),  # -es after ch
        ("abscess", "Two abscesses were drained."),  # -es after s
        ("artery", "Both arteries are narrowed."),  # consonant + y -> ies
        ("biopsy", "Repeat biopsies were clean."),
        ("airway", "Both airways are open."),  # vowel + y -> s
        ("calf", "Both calves are swollen."),  # f -> ves
        ("diagnosis", "The diagnoses differ."),  # -sis -> -ses
        ("blood clot", "Blood clots can form."),  # head = last word
        ("drop of blood", "Two drops of blood are enough."),  # head = word before "of"
        ("chest X-ray", "Two chest X-rays were taken."),  # hyphenated head
        ("MRI", "Two MRIs were done."),
    ],
)
def test_english_plural_of_the_head_word_counts(term, sentence):
    checks = TermMatcher([Term(term, "x")]).check(sentence, "x")
    assert [(c.src, c.found) for c in checks] == [(term, True)]


@pytest.mark.parametrize(
    ("term", "sentence"),
    [
        ("blood clot", "Bloods clot fast."),  # only the head word inflects
        ("drop of blood", "A drop of bloods."),
        ("artery", "Two arterys."),  # not a plural of artery
        ("vaccine", "Vaccinated twice."),  # a longer word, not an inflection
    ],
)
def test_english_non_plurals_do_not_count(term, sentence):
    assert TermMatcher([Term(term, "x")]).check(sentence, "x") == []


def test_english_forms_exact_sets():
    assert english_forms("artery") == {"artery", "arteries"}
    assert english_forms("stitch") == {"stitch", "stitches"}
    assert english_forms("knife") == {"knife", "knifes", "knives"}
    assert english_forms("t4") == {"t4"}  # words with digits do not inflect
    assert english_head_index(["shortness", "of", "breath"]) == 0
    assert english_head_index(["blood", "clot"]) == 1


def test_irregular_plural_through_a_source_variant():
    matcher = TermMatcher([Term("foot", "pie", src_variants=("feet",))])
    # The check names the glossary term, whichever form the source used.
    assert _found(matcher, "Both feet are cold.", "Tiene los pies fríos.") == [("foot", True)]
    assert _found(matcher, "One foot is cold.", "Un pie frío.") == [("foot", True)]
    assert _found(matcher, "Feet and foot.", "Pies.") == [("foot", True), ("foot", False)]


# --- Spanish target terms: number and gender on every word, linking words fixed ---


def test_spanish_forms_exact_sets():
    assert spanish_forms("presión") == {"presion", "presiones"}  # consonant + es, accent dropped
    assert spanish_forms("arterial") == {"arterial", "arteriales"}
    assert spanish_forms("vena") == {"vena", "venas", "veno", "venos"}  # -o/-a/-os/-as
    assert spanish_forms("fiebre") == {"fiebre", "fiebres"}  # vowel + s, no gender
    assert spanish_forms("nariz") == {"nariz", "narices"}  # -z -> -ces
    assert spanish_forms("análisis") == {"analisis"}  # unstressed -is: invariant
    assert spanish_forms("virus") == {"virus"}
    assert spanish_forms("tórax") == {"torax"}
    assert spanish_forms("tos") == {"tos", "toses"}  # one syllable: + es
    assert spanish_forms("inglés") == {"ingles", "ingleses", "inglesa", "inglesas"}  # stressed -és
    assert spanish_forms("doctor") == {"doctor", "doctores", "doctora", "doctoras"}
    assert spanish_forms("rubí") == {"rubi", "rubis", "rubies"}
    assert spanish_forms("país") == {"pais", "paises"}  # an accented í is a syllable of its own
    assert {"pulmon", "pulmones"} <= spanish_forms("pulmones")  # a plural term matches its singular
    assert {"via", "vias"} <= spanish_forms("vías")
    assert {"lombriz", "lombrices"} <= spanish_forms("lombrices")
    assert spanish_forms("de") == {"de"} and spanish_forms("la") == {"la"}  # linking words stay
    assert spanish_forms("T4") == {"t4"}


@pytest.mark.parametrize(
    ("tgt", "output"),
    [
        ("hinchado", "Tiene la pierna hinchada."),  # gender
        ("hinchado", "Tiene los pies hinchados."),  # gender and number
        ("fiebre", "Fiebres altas."),
        ("dolor", "Dolores frecuentes."),
        ("nariz", "Las narices."),
        ("dosis", "Dos dosis."),
        ("examen", "Los exámenes."),  # the accent appears in the plural
        ("presión", "Presiones bajas."),  # ... or vanishes
        ("vena", "Venas varicosas."),
        ("presión arterial", "Sus presiones arteriales son normales."),  # every word inflects
        ("vía aérea superior", "Las vías aéreas superiores están libres."),
        ("insuficiencia cardíaca", "Las insuficiencias cardíacas agudas."),
        ("dolor de cabeza", "Tiene dolores de cabeza."),  # across a linking word
        ("vías respiratorias", "La vía respiratoria está libre."),  # a plural term, singular output
        ("pulmones", "El pulmón derecho."),
        ("Presión Arterial", "presion ARTERIAL"),
    ],
)
def test_spanish_inflections_are_found(tgt, output):
    assert _found(TermMatcher([Term("term", tgt)]), "The term.", output) == [("term", True)]


@pytest.mark.parametrize(
    ("tgt", "output"),
    [
        ("vena", "Vio un venado."),  # shares the stem, a different word
        ("fiebre", "Fiebrecilla."),
        ("dolor de cabeza", "Dolor en la cabeza."),  # linking words must be the same
        ("presión arterial", "Presión, arterial."),  # words in a term are not split by punctuation
        ("presión arterial", "Arterial presión."),  # nor reordered
        ("aislamiento", "El autoaislamiento."),
        ("aislamiento", "El auto-aislamiento."),  # a hyphenated compound is one word
    ],
)
def test_spanish_near_misses_are_not_found(tgt, output):
    assert _found(TermMatcher([Term("term", tgt)]), "The term.", output) == [("term", False)]


# --- Glossary variants ---


def test_target_variant_is_found():
    matcher = TermMatcher([Term("whooping cough", "tos ferina", tgt_variants=("tosferina",))])
    assert _found(matcher, "Whooping cough is back.", "Vuelve la tosferina.") == [("whooping cough", True)]
    assert _found(matcher, "Whooping cough is back.", "Vuelve la tos ferina.") == [("whooping cough", True)]
    [check] = matcher.check("Whooping cough is back.", "Vuelve la tos.")
    assert (check.src, check.tgt, check.found) == ("whooping cough", "tos ferina", False)


def test_load_glossary_variants(tmp_path):
    path = tmp_path / "terms.tsv"
    path.write_text("en\tes\nfoot | feet\tpie\nwhooping cough\ttos ferina|tosferina|tos ferina\n", encoding="utf-8")
    assert load_glossary(str(path)) == [
        Term("foot", "pie", src_variants=("feet",)),
        Term("whooping cough", "tos ferina", tgt_variants=("tosferina",)),  # a repeated form counts once
    ]


@pytest.mark.parametrize(
    ("line", "column"),
    [
        ("foot||feet\tpie", "en"),
        ("|foot\tpie", "en"),
        ("foot|\tpie", "en"),
        ("foot\tpie| ", "es"),
        ("foot\t|", "es"),
    ],
)
def test_unparseable_variant_names_file_line_and_column(tmp_path, line, column):
    path = tmp_path / "terms.tsv"
    path.write_text(f"en\tes\nrash\tsarpullido\n{line}\nhives\turticaria\n", encoding="utf-8")
    with pytest.raises(MedtuneError, match="empty variant") as err:
        load_glossary(str(path))
    assert f"{path}:3: column '{column}'" in str(err.value)
    assert "'term|variant|variant'" in str(err.value)


def test_unparseable_variant_in_jsonl_names_its_line(tmp_path):
    path = tmp_path / "terms.jsonl"
    path.write_text('{"en": "rash", "es": "sarpullido"}\n\n{"en": "hives", "es": "urticaria||ronchas"}\n')
    with pytest.raises(MedtuneError, match=rf"{path}:3: column 'es' holds 'urticaria\|\|ronchas'"):
        load_glossary(str(path))


# --- No double counting: longest source match, one target place per occurrence ---

OVERLAPPING = [
    Term("stroke", "ictus"),
    Term("heat stroke", "golpe de calor"),
    Term("chest pain", "dolor en el pecho"),
    Term("pain", "dolor"),
    Term("pain relief", "alivio del dolor"),
    Term("headache", "dolor de cabeza"),
    Term("vaccine", "vacuna"),
]


def test_a_term_inside_a_longer_term_is_not_counted():
    matcher = TermMatcher(OVERLAPPING)
    assert _found(matcher, "Heat stroke is an emergency.", "El golpe de calor es una urgencia.") == [
        ("heat stroke", True)
    ]
    assert _found(matcher, "Heat stroke, then a stroke.", "Golpe de calor y luego un ictus.") == [
        ("heat stroke", True),
        ("stroke", True),
    ]


def test_overlapping_terms_resolve_to_longest_then_leftmost():
    matcher = TermMatcher([*OVERLAPPING, Term("chest pain relief", "alivio del dolor torácico")])
    # Three words beat two.
    assert [c.src for c in matcher.check("Chest pain relief.", "x")] == ["chest pain relief"]
    # Two words each, overlapping on "pain": the leftmost wins.
    assert [c.src for c in TermMatcher(OVERLAPPING).check("Chest pain relief.", "x")] == ["chest pain"]


def test_a_listed_form_beats_another_terms_plural():
    matcher = TermMatcher([Term("airway", "vía aérea"), Term("airways", "vías respiratorias")])
    assert [(c.src, c.tgt) for c in matcher.check("The airways.", "x")] == [("airways", "vías respiratorias")]
    assert [(c.src, c.tgt) for c in matcher.check("The airway.", "x")] == [("airway", "vía aérea")]


def test_a_target_place_serves_one_occurrence():
    matcher = TermMatcher(OVERLAPPING)
    # "dolor" inside "dolor de cabeza" renders the headache, not also the pain, in either order.
    expected = [("headache", True), ("pain", False)]
    assert _found(matcher, "Headache and pain.", "Dolor de cabeza y molestias.") == expected
    assert _found(matcher, "Pain and headache.", "Molestias y dolor de cabeza.") == expected[::-1]
    assert _found(matcher, "Pain and headache.", "Dolor y dolor de cabeza.") == [("pain", True), ("headache", True)]


def test_a_term_twice_needs_its_target_twice():
    matcher = TermMatcher(OVERLAPPING)
    assert _found(matcher, "A vaccine, then a second vaccine.", "Una vacuna.") == [
        ("vaccine", True),
        ("vaccine", False),
    ]
    assert _found(matcher, "A vaccine, then a second vaccine.", "Una vacuna y otra vacuna.") == [
        ("vaccine", True),
        ("vaccine", True),
    ]
    accuracy, count, _ = terminology_accuracy(["The vaccine and the vaccines."], ["La vacuna."], OVERLAPPING)
    assert (accuracy, count) == (0.5, 2)


def test_word_boundaries_with_hyphens_and_apostrophes():
    matcher = TermMatcher(
        [
            Term("isolation", "aislamiento"),
            Term("x-ray", "radiografía"),
            Term("Hashimoto's thyroiditis", "tiroiditis de Hashimoto"),
        ]
    )
    assert matcher.check("Self-isolation at home.", "Autoaislamiento.") == []
    assert _found(matcher, "Isolation-free days.", "x") == []  # joined by a hyphen on either side
    assert _found(matcher, "Two X-rays.", "Dos radiografías.") == [("x-ray", True)]
    assert _found(matcher, "An x ray.", "Una radiografía.") == []  # the hyphen is part of the term
    assert _found(matcher, "Hashimoto’s thyroiditis.", "Tiroiditis de Hashimoto.") == [
        ("Hashimoto's thyroiditis", True)
    ]
    assert _found(matcher, "Isolation, then\nX-ray.", "Aislamiento y radiografía.") == [
        ("isolation", True),
        ("x-ray", True),
    ]


def test_a_form_without_letters_or_digits_is_an_error(tmp_path):
    path = tmp_path / "terms.tsv"
    path.write_text("en\tes\npercent|%\tpor ciento\n", encoding="utf-8")
    with pytest.raises(MedtuneError, match=rf"{path}:2: column 'en' holds 'percent\|%'; .* letter or digit"):
        load_glossary(str(path))
    # Built in code, such a form is never matched, and the term's other forms still are.
    matcher = TermMatcher([Term("percent", "por ciento", tgt_variants=("%",))])
    assert _found(matcher, "Five percent.", "Cinco %.") == [("percent", False)]
    assert _found(matcher, "Five percent.", "Cinco por ciento.") == [("percent", True)]


def test_cli_names_the_bad_variant_line_before_loading_a_model(tmp_path):
    glossary = tmp_path / "terms.tsv"
    glossary.write_text("en\tes\nrash\tsarpullido\nfoot|\tpie\n", encoding="utf-8")
    out = tmp_path / "eval"
    args = ["eval", "--task", "translation", "--model", str(tmp_path / "no-model"), "--data"]
    args += ["demo:medical_en_es.jsonl", "--glossary", str(glossary), "--limit", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"MEDTUNE_HOME": str(tmp_path / "home")})
    assert_user_error(result, f"{glossary}:3: column 'en' holds 'foot|'", "'term|variant|variant'")
    assert not out.exists()
