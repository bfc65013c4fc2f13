"""corpus_scores is sacreBLEU's BLEU, chrF++ and TER, with signatures."""

from __future__ import annotations

import sacrebleu

from medtune.eval.metrics import corpus_scores, sentence_chrf_scores

HYPOTHESES = [
    "Tome dos comprimidos cada ocho horas con comida.",
    "La presión arterial del paciente es alta.",
    "Llame a su médico si tiene fiebre.",
    "No conduzca después de tomar este medicamento.",
]
REFERENCES = [
    "Tome dos comprimidos cada ocho horas con alimentos.",
    "El paciente tiene la presión arterial alta.",
    "Llame a su médico si tiene fiebre.",
    "No maneje después de tomar este medicamento.",
]


def test_scores_equal_sacrebleu_called_directly():
    scores = corpus_scores(HYPOTHESES, REFERENCES)
    assert scores["bleu"] == round(sacrebleu.corpus_bleu(HYPOTHESES, [REFERENCES]).score, 4)
    assert scores["chrf"] == round(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES], word_order=2).score, 4)
    assert scores["ter"] == round(sacrebleu.corpus_ter(HYPOTHESES, [REFERENCES]).score, 4)
    # chrF++ (word bigrams) differs from plain chrF on these sentences.
    assert scores["chrf"] != round(sacrebleu.corpus_chrf(HYPOTHESES, [REFERENCES]).score, 4)
    assert 0 < scores["bleu"] < 100 and 0 < scores["chrf"] < 100 and 0 < scores["ter"] < 100


def test_perfect_and_empty_hypotheses():
    perfect = corpus_scores(REFERENCES, REFERENCES)
    assert (perfect["bleu"], perfect["chrf"], perfect["ter"]) == (100.0, 100.0, 0.0)
    empty = corpus_scores([""] * len(REFERENCES), REFERENCES)
    assert (empty["bleu"], empty["chrf"], empty["ter"]) == (0.0, 0.0, 100.0)


def test_signatures_are_present():
    signatures = corpus_scores(HYPOTHESES, REFERENCES)["signatures"]
    assert set(signatures) == {"bleu", "chrf", "ter"}
    version = f"version:{sacrebleu.__version__}"
    assert signatures["bleu"].startswith("nrefs:1|") and "tok:13a" in signatures["bleu"]
    assert "nw:2" in signatures["chrf"] and "nc:6" in signatures["chrf"]
    assert "tok:tercom" in signatures["ter"]
    assert all(version in s for s in signatures.values())


def test_sentence_chrf_is_chrf_plus_plus_rounded():
    expected = [
        round(sacrebleu.sentence_chrf(h, [r], word_order=2).score, 2)
        for h, r in zip(HYPOTHESES, REFERENCES, strict=True)
    ]
    assert sentence_chrf_scores(HYPOTHESES, REFERENCES) == expected
    assert expected[2] == 100.0 and len(set(expected)) == 4


def test_signatures_equal_those_of_sacrebleus_corpus_score():
    metrics = {"bleu": sacrebleu.BLEU(), "chrf": sacrebleu.CHRF(word_order=2), "ter": sacrebleu.TER()}
    for metric in metrics.values():
        metric.corpus_score(HYPOTHESES, [REFERENCES])
    expected = {name: str(metric.get_signature()) for name, metric in metrics.items()}
    assert corpus_scores(HYPOTHESES, REFERENCES)["signatures"] == expected
