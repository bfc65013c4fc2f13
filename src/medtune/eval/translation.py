"""Translate a set of pairs with a model and score the result."""

from __future__ import annotations

import json
import random
from pathlib import Path

from medtune.data.glossary import Term
from medtune.data.io import write_jsonl
from medtune.data.parallel import Pair
from medtune.data.prompts import translation_prompt
from medtune.errors import MedtuneError
from medtune.eval.metrics import corpus_scores, sentence_chrf
from medtune.eval.terminology import terminology_accuracy
from medtune.generate.engine import GenerationStats, generate_texts
from medtune.models.loading import LoadedModel


def pick_examples(pool: list[Pair], k: int, seed: int) -> list[Pair]:
    """K few-shot examples from a pool, chosen by seed, preferring sentences of moderate length."""
    if k <= 0 or not pool:
        return []
    moderate = [p for p in pool if 30 <= len(p.src) <= 160] or pool
    return random.Random(seed).sample(moderate, min(k, len(moderate)))


def translation_prompts(
    loaded: LoadedModel, pairs: list[Pair], examples: list[Pair], src_lang: str, tgt_lang: str
) -> list[str]:
    if loaded.is_seq2seq:
        return [p.src for p in pairs]  # translation models take the bare source sentence
    return [translation_prompt(p.src, src_lang, tgt_lang, examples) for p in pairs]


def evaluate_translation(
    loaded: LoadedModel,
    pairs: list[Pair],
    out_dir: Path,
    glossary: list[Term] | None = None,
    examples: list[Pair] = (),
    src_lang: str = "en",
    tgt_lang: str = "es",
    batch_size: int = 16,
    num_beams: int = 1,
    max_new_tokens: int = 160,
    label: str = "translate",
) -> dict:
    """Translate ``pairs`` and write ``outputs.jsonl`` and ``metrics.json`` to ``out_dir``.

    Returns the metrics: bleu, chrf, ter, n, signatures, term_accuracy (with a glossary),
    few_shot, sentences_per_s.
    """
    prompts = translation_prompts(loaded, pairs, list(examples), src_lang, tgt_lang)
    # A translation is rarely more than twice its source in tokens; cap each sentence accordingly.
    src_lengths = [len(loaded.tokenizer(p.src, add_special_tokens=False)["input_ids"]) for p in pairs]
    limits = [min(max_new_tokens, 2 * n + 16) for n in src_lengths]
    stats = GenerationStats()
    hyps = generate_texts(
        loaded.model,
        loaded.tokenizer,
        prompts,
        batch_size=batch_size,
        max_new_tokens=limits,
        num_beams=num_beams,
        progress=label,
        stats=stats,
    )
    refs = [p.tgt for p in pairs]
    metrics = corpus_scores(hyps, refs)
    metrics.update(
        n=len(pairs),
        few_shot=len(examples),
        model=loaded.ref.name,
        num_beams=num_beams,
        sentences_per_s=round(stats.sequences_per_s, 3),
        generation_seconds=round(stats.seconds, 2),
    )
    per_term = [[] for _ in pairs]
    if glossary:
        acc, n_terms, per_term = terminology_accuracy([p.src for p in pairs], hyps, glossary)
        metrics.update(term_accuracy=None if acc is None else round(acc, 4), term_occurrences=n_terms)
    records = [
        {
            "id": i,
            "origin": p.origin,
            "source": p.src,
            "reference": p.tgt,
            "output": h,
            "chrf": sentence_chrf(h, p.tgt),
            "terms": [{"src": c.src, "tgt": c.tgt, "found": c.found} for c in checks],
        }
        for i, (p, h, checks) in enumerate(zip(pairs, hyps, per_term, strict=True))
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(out_dir / "outputs.jsonl", records)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")
    return metrics


def evaluate_translation_file(
    model: str,
    data: str,
    out: Path,
    src_col: str = "en",
    tgt_col: str = "es",
    src_lang: str = "en",
    tgt_lang: str = "es",
    glossary: str | None = None,
    few_shot: int = 0,
    few_shot_data: str | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    num_beams: int = 1,
    max_new_tokens: int = 160,
    seed: int = 42,
    log=print,
) -> dict:
    """``medtune eval --task translation``: load, validate, pick few-shot examples, translate and score.

    Few-shot examples come from ``few_shot_data``, or else from ``data`` (and are then not scored).

    Raises:
        MedtuneError: bad options, unreadable data or model.
    """
    from medtune.data.glossary import load_glossary
    from medtune.data.parallel import load_pairs
    from medtune.data.validate import validate_pairs
    from medtune.models.loading import load_model

    if few_shot < 0:
        raise MedtuneError("--few-shot must be 0 or more.")
    pairs, report = validate_pairs(load_pairs(data, src_col, tgt_col), "eval")
    if report.issues:
        log(report.summary())
    examples: list[Pair] = []
    if few_shot:
        if few_shot_data:
            pool, _ = validate_pairs(load_pairs(few_shot_data, src_col, tgt_col), "few-shot")
            examples = pick_examples(pool, few_shot, seed)
        else:
            examples = pick_examples(pairs, few_shot, seed)
            chosen = {id(p) for p in examples}
            pairs = [p for p in pairs if id(p) not in chosen]
    if limit:
        pairs = pairs[:limit]
    terms = load_glossary(glossary) if glossary else None
    loaded = load_model(model)
    return evaluate_translation(
        loaded, pairs, out, terms, examples, src_lang, tgt_lang, batch_size, num_beams, max_new_tokens
    )
