"""Corpus-level translation metrics through sacreBLEU, with their signatures.

Scores are computed from per-sentence sufficient statistics (sacreBLEU's own extraction), cached
per process, so that scoring a system and then bootstrapping it (``medtune.eval.significance``)
extracts them once: TER's extraction is the slow part (seconds per thousand sentences).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

SentenceStatistics = tuple[tuple[float, ...], ...]


def translation_metrics() -> dict[str, Metric]:
    """The metrics every translation score uses: BLEU, chrF++ (chrF with word bigrams) and TER, sacreBLEU defaults."""
    return {"bleu": BLEU(), "chrf": CHRF(word_order=2), "ter": TER()}


@lru_cache(maxsize=16)
def _statistics(name: str, hypotheses: tuple[str, ...], references: tuple[str, ...]) -> SentenceStatistics:
    metric = translation_metrics()[name]
    # sacreBLEU's significance module uses this same method to get per-sentence statistics.
    return tuple(tuple(row) for row in metric._extract_corpus_statistics(list(hypotheses), [list(references)]))


def sentence_statistics(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, SentenceStatistics]:
    """Per-sentence sufficient statistics of each metric (one row per sentence), cached per process.

    BLEU: hypothesis and reference lengths, then n-gram matches and totals (n = 1..4); chrF++:
    hypothesis, reference and matching counts of character 1..6-grams and word 1..2-grams; TER:
    edits and reference length.
    """
    hyps, refs = tuple(hypotheses), tuple(references)
    return {name: _statistics(name, hyps, refs) for name in translation_metrics()}


def corpus_scores(hypotheses: list[str], references: list[str]) -> dict:
    """BLEU, chrF++ and TER of a corpus (exactly sacreBLEU's ``corpus_score``), each with its signature."""
    metrics = translation_metrics()
    stats = sentence_statistics(hypotheses, references)
    scores = {name: round(metric._aggregate_and_compute(stats[name]).score, 4) for name, metric in metrics.items()}
    for metric in metrics.values():
        metric.num_refs = 1  # what corpus_score would record; the signature needs it, and medtune has one reference
    return {**scores, "signatures": {name: str(metric.get_signature()) for name, metric in metrics.items()}}


def sentence_chrf_scores(hypotheses: Sequence[str], references: Sequence[str]) -> list[float]:
    """chrF++ of each sentence, rounded to 2 decimals (outputs.jsonl), from the cached statistics.

    Equal to sacreBLEU's ``sentence_score``: a sentence's score is computed from its own row.
    """
    chrf = translation_metrics()["chrf"]
    return [
        round(chrf._compute_score_from_stats(list(row)).score, 2)
        for row in sentence_statistics(hypotheses, references)["chrf"]
    ]
