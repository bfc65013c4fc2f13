"""Translate a set of pairs with a model and score the result."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medtune.data.glossary import Term
from medtune.data.ids import stable_ids
from medtune.data.parallel import Pair
from medtune.data.prompts import translation_prompt
from medtune.errors import MedtuneError
from medtune.eval.metrics import corpus_scores, sentence_chrf_scores
from medtune.eval.out_folder import write_evaluation
from medtune.eval.significance import paired_mean_delta, paired_translation_deltas
from medtune.eval.terminology import terminology_accuracy
from medtune.generate.engine import GenerationStats, generate_texts
from medtune.models.loading import LoadedModel
from medtune.runs import is_main_process
from medtune.sharding import gather_in_order, item_shard


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


def translate_pairs(
    loaded: LoadedModel,
    pairs: Sequence[Pair],
    examples: Sequence[Pair] = (),
    src_lang: str = "en",
    tgt_lang: str = "es",
    batch_size: int = 16,
    num_beams: int = 1,
    max_new_tokens: int = 160,
    label: str | None = "translate",
    stats: GenerationStats | None = None,
) -> list[str]:
    """Translate the pairs' sources with the translation prompt (causal) or as they are (seq2seq), in order.

    Greedy when ``num_beams == 1``. Each sentence's length is capped at twice its source in tokens plus
    16, and at ``max_new_tokens``.
    """
    prompts = translation_prompts(loaded, list(pairs), list(examples), src_lang, tgt_lang)
    # A translation is rarely more than twice its source in tokens; cap each sentence accordingly.
    src_lengths = [len(loaded.tokenizer(p.src, add_special_tokens=False)["input_ids"]) for p in pairs]
    limits = [min(max_new_tokens, 2 * n + 16) for n in src_lengths]
    return generate_texts(
        loaded.model,
        loaded.tokenizer,
        prompts,
        batch_size=batch_size,
        max_new_tokens=limits,
        num_beams=num_beams,
        progress=label,
        stats=stats,
    )


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

    Under several processes each translates its share of the pairs (``item_shard``); the shares are
    gathered in order, so every process returns the metrics of one process and the main one writes.

    Returns the metrics of :func:`score_translations`, plus few_shot, model, num_beams,
    sentences_per_s and generation_seconds (of the slowest process).
    """
    stats = GenerationStats()
    mine = item_shard(len(pairs))
    shown = label if is_main_process() else None  # one progress bar, the main process's
    settings = (src_lang, tgt_lang, batch_size, num_beams, max_new_tokens, shown, stats)
    local = translate_pairs(loaded, pairs[mine.start : mine.stop], examples, *settings) if mine else []
    hyps = gather_in_order(local)
    seconds = max(gather_in_order([stats.seconds]))
    return score_translations(
        pairs,
        hyps,
        out_dir,
        glossary,
        {
            "few_shot": len(examples),
            "model": loaded.ref.name,
            "num_beams": num_beams,
            "sentences_per_s": round(len(pairs) / seconds, 3) if seconds else 0.0,
            "generation_seconds": round(seconds, 2),
            **loaded.runtime_info(),
        },
    )


def translation_ids(pairs: Sequence[Pair]) -> list[str]:
    """Each pair's stable id: the data's own ``id``, else a hash of the source sentence."""
    return stable_ids([p.id for p in pairs], [(p.src,) for p in pairs])


def score_translations(
    pairs: Sequence[Pair],
    hyps: Sequence[str],
    out_dir: Path,
    glossary: list[Term] | None = None,
    extra: dict | None = None,
) -> dict:
    """Score translations of ``pairs`` and write ``outputs.jsonl`` and ``metrics.json`` to ``out_dir``.

    The one scoring path, for a model's translations and for any other system's.

    Args:
        pairs: the scored pairs (sources and references).
        hyps: one translation per pair.
        glossary: terms for terminology accuracy (per occurrence).
        extra: figures added to the metrics as they are (model, speed, a comparison, ...).
    Returns:
        The metrics: bleu, chrf, ter, n, signatures, term_accuracy and term_occurrences (with a
        glossary), then ``extra``.
    Raises:
        MedtuneError: no pairs.
    """
    if not pairs:
        raise MedtuneError("No pairs to score: the data set is empty after validation and --limit.")
    refs = [p.tgt for p in pairs]
    metrics = corpus_scores(list(hyps), refs)
    metrics["n"] = len(pairs)
    per_term: list[list] = [[] for _ in pairs]
    if glossary:
        acc, n_terms, per_term = terminology_accuracy([p.src for p in pairs], list(hyps), glossary)
        metrics.update(term_accuracy=None if acc is None else round(acc, 4), term_occurrences=n_terms)
    metrics.update(extra or {})
    records = [
        {
            "id": pair_id,
            "origin": p.origin,
            "source": p.src,
            "reference": p.tgt,
            "output": h,
            "chrf": chrf,
            "terms": [{"src": c.src, "tgt": c.tgt, "found": c.found} for c in checks],
        }
        for pair_id, p, h, chrf, checks in zip(
            translation_ids(pairs), pairs, hyps, sentence_chrf_scores(hyps, refs), per_term, strict=True
        )
    ]
    write_evaluation(out_dir, records, metrics)
    return metrics


def compare_translations(
    pairs: Sequence[Pair],
    hyps: Sequence[str],
    other_hyps: Sequence[str],
    glossary: list[Term] | None = None,
    n_resamples: int = 1000,
    seed: int = 42,
) -> dict[str, dict]:
    """Paired bootstrap of ``hyps`` minus ``other_hyps`` on the same pairs and resamples.

    Returns:
        ``{"bleu": ..., "chrf": ..., "ter": ...}`` and, when the glossary has occurrences in the
        sources, ``"term_accuracy"`` (paired over term occurrences); each a
        :meth:`PairedDelta.to_dict` (value, ci_low, ci_high, p_value, significant, ...).
    """
    refs = [p.tgt for p in pairs]
    deltas = paired_translation_deltas(other_hyps, hyps, refs, n_resamples, seed)
    result = {name: delta.to_dict() for name, delta in deltas.items()}
    if glossary:
        sources = [p.src for p in pairs]
        # The occurrences depend only on the sources and the glossary, so both lists pair up.
        found = [c.found for sentence in terminology_accuracy(sources, list(hyps), glossary)[2] for c in sentence]
        other = [c.found for sentence in terminology_accuracy(sources, list(other_hyps), glossary)[2] for c in sentence]
        if found:
            result["term_accuracy"] = paired_mean_delta(other, found, n_resamples, seed).to_dict()
    return result


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
    device: str = "auto",
    dtype: str = "auto",
) -> dict:
    """``medtune eval --task translation``: load, validate, pick few-shot examples, translate and score.

    Few-shot examples come from ``few_shot_data``, or else from ``data`` (and are then not scored).

    Raises:
        MedtuneError: bad options, unreadable data or model.
    """
    from medtune.data.glossary import load_glossary
    from medtune.data.parallel import load_pairs
    from medtune.data.sampling import few_shot_examples
    from medtune.data.validate import validate_pairs
    from medtune.models.loading import load_model

    if few_shot < 0:
        raise MedtuneError("--few-shot must be 0 or more.")
    pairs, report = validate_pairs(load_pairs(data, src_col, tgt_col), "eval")
    if report.issues:
        log(report.summary())
    pool = None
    if few_shot and few_shot_data:
        pool, _ = validate_pairs(load_pairs(few_shot_data, src_col, tgt_col), "few-shot")
    examples, pairs = few_shot_examples(
        pairs, few_shot, lambda found, k: pick_examples(found, k, seed), data, "pairs", pool
    )
    if limit:
        pairs = pairs[:limit]
    terms = load_glossary(glossary) if glossary else None
    loaded = load_model(model, dtype=dtype, device=device, log=log)
    return evaluate_translation(
        loaded, pairs, out, terms, examples, src_lang, tgt_lang, batch_size, num_beams, max_new_tokens
    )


def score_translation_outputs_file(
    data: str,
    outputs: str,
    out: Path,
    src_col: str = "en",
    tgt_col: str = "es",
    glossary: str | None = None,
    compare_to: str | None = None,
    limit: int | None = None,
    seed: int = 42,
    log: Callable[[str], Any] = print,
) -> dict:
    """``medtune eval --task translation --outputs OUT``: score existing translations, no model loaded.

    The translations in ``outputs`` (and ``compare_to``) are joined to ``data`` by id or by
    position (:func:`medtune.eval.system_outputs.join_system_outputs`) and scored exactly as a
    model's are (:func:`score_translations`). With ``compare_to``, ``metrics["delta"]`` holds the
    paired bootstrap of OUT minus OTHER (:func:`compare_translations`, seeded by ``seed``) and
    ``metrics["compare_to"]`` the other system's own scores.

    Raises:
        MedtuneError: unreadable data, glossary or outputs, and the join errors (missing, extra or
            duplicate ids; row counts that differ).
    """
    from medtune.data.glossary import load_glossary
    from medtune.data.parallel import load_pairs
    from medtune.data.validate import validate_pairs
    from medtune.eval.system_outputs import join_system_outputs

    raw_pairs = load_pairs(data, src_col, tgt_col)
    pairs, report = validate_pairs(raw_pairs, "eval")
    if report.issues:
        log(report.summary())
    ids = translation_ids(pairs)
    hyps = join_system_outputs(outputs, data, raw_pairs, pairs, ids, log)
    other = join_system_outputs(compare_to, data, raw_pairs, pairs, ids, log) if compare_to else None
    if limit:
        pairs, hyps, other = pairs[:limit], hyps[:limit], other[:limit] if other else None
    terms = load_glossary(glossary) if glossary else None
    extra: dict[str, Any] = {"outputs": str(outputs)}
    if other is not None:
        refs = [p.tgt for p in pairs]
        other_scores = {k: v for k, v in corpus_scores(other, refs).items() if k != "signatures"}
        if terms:
            accuracy = terminology_accuracy([p.src for p in pairs], other, terms)[0]
            other_scores["term_accuracy"] = None if accuracy is None else round(accuracy, 4)
        extra["compare_to"] = {"outputs": str(compare_to), **other_scores}
        extra["delta"] = compare_translations(pairs, hyps, other, terms, seed=seed)
    return score_translations(pairs, hyps, out, terms, extra)
