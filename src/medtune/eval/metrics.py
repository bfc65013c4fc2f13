"""Corpus-level translation metrics through sacreBLEU, with their signatures."""

from __future__ import annotations

from sacrebleu.metrics import BLEU, CHRF, TER


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """BLEU, chrF++ (chrF with word bigrams) and TER, each with its sacreBLEU signature."""
    bleu, chrf, ter = BLEU(), CHRF(word_order=2), TER()
    refs = [references]
    b, c, t = (
        bleu.corpus_score(hypotheses, refs),
        chrf.corpus_score(hypotheses, refs),
        ter.corpus_score(hypotheses, refs),
    )
    return {
        "bleu": round(b.score, 4),
        "chrf": round(c.score, 4),
        "ter": round(t.score, 4),
        "signatures": {
            "bleu": str(bleu.get_signature()),
            "chrf": str(chrf.get_signature()),
            "ter": str(ter.get_signature()),
        },
    }


def sentence_chrf(hypothesis: str, reference: str) -> float:
    return round(CHRF(word_order=2).sentence_score(hypothesis, [reference]).score, 2)
