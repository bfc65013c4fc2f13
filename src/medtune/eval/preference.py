"""Preference accuracy: how often a model prefers the chosen answer of a pair to the rejected one.

A model prefers the answer with the higher mean per-token log-probability (answers of different
lengths compare fairly; an exact tie counts as not preferred). For a DPO/KTO output folder, the
implicit reward of an answer is ``beta * (log p_policy - log p_reference)`` (summed over its tokens)
against the reference model it was trained from; its accuracy is reported beside. Intervals are 95%
percentile bootstraps over pairs (:func:`medtune.eval.significance.bootstrap_interval`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from medtune.data.preference import PreferencePair
from medtune.errors import MedtuneError
from medtune.eval.out_folder import write_evaluation
from medtune.eval.significance import bootstrap_interval
from medtune.models.loading import LoadedModel
from medtune.sharding import gather_in_order, item_shard
from medtune.train.objectives import PairExample, reference_logps
from medtune.train.preference_data import PairEncoding, encode_preference_pairs

PROMPT_FORMATS = ("auto", "translation", "chat")
DEFAULT_BETA = 0.1


def evaluate_preference(
    loaded: LoadedModel,
    pairs: Sequence[PreferencePair],
    out_dir: Path,
    task: str,
    batch_size: int = 8,
    reference: LoadedModel | None = None,
    seed: int = 42,
    max_length: int = 1024,
    src_lang: str = "en",
    tgt_lang: str = "es",
    beta: float | None = None,
    log: Callable[[str], Any] = print,
) -> dict:
    """Score every pair with ``loaded`` (and ``reference``) and write ``metrics.json`` and ``outputs.jsonl``.

    Under several processes each scores its share of the pairs (``item_shard``), gathered in order:
    every process returns the metrics of one, the main one writes.

    Args:
        loaded: the model judged.
        pairs: the preference pairs.
        out_dir: folder for the two files (created).
        task: how pairs are encoded: ``translation`` (the prompt is the source sentence) or ``chat``/``qa``
            (the prompt is rendered with the chat template, the answer is the assistant turn).
        batch_size: pairs per forward pass (chosen and rejected in one batch).
        reference: the reference model of a DPO/KTO model (same tokenizer); adds the implicit-reward figures.
        seed: bootstrap seed.
        max_length: longest sequence in tokens (longer ones are cut at the end and counted).
        src_lang, tgt_lang: the translation prompt's languages.
        beta: the implicit reward's scale; default: the one ``loaded`` was trained with, else 0.1.
    Returns:
        Metrics: ``accuracy``, ``ci_low``, ``ci_high``, ``n``, ``mean_margin`` (mean per-token log-prob of
        chosen minus rejected), ``ties``, ``skipped``, ``truncated``; with a reference also
        ``reward_accuracy``, ``reward_ci_low``, ``reward_ci_high``, ``mean_reward_margin``, ``beta``.
    Raises:
        MedtuneError: no pair to score, or a reference whose vocabulary differs from the model's.
    """
    if not pairs:
        raise MedtuneError("No preference pairs to score: the data set is empty after validation and --limit.")
    tokenizer = loaded.tokenizer
    if reference is not None and len(reference.tokenizer) != len(tokenizer):
        raise MedtuneError(
            f"The reference model {reference.ref.name} has a vocabulary of {len(reference.tokenizer)} tokens and "
            f"{loaded.ref.name} of {len(tokenizer)}; implicit rewards need the same tokenizer."
        )
    how = PairEncoding(task, loaded.is_seq2seq, max_length, src_lang, tgt_lang, loaded.trained_system_prompt)
    encoded, kept, report = encode_preference_pairs(tokenizer, pairs, how, "skip")
    if report.skipped:
        log(report.summary("eval"))
    started = time.perf_counter()
    pad = tokenizer.pad_token_id
    policy = _pair_logps(loaded.model, encoded, pad, how.seq2seq, batch_size)  # the model as it is
    counts = [
        [_scored_tokens(p.chosen.labels, how.seq2seq), _scored_tokens(p.rejected.labels, how.seq2seq)] for p in encoded
    ]
    rows, preferred, margins = [], [], []
    for index, (logp, count) in zip(kept, zip(policy.tolist(), counts, strict=True), strict=True):
        margin = logp[0] / count[0] - logp[1] / count[1]
        preferred.append(margin > 0)
        margins.append(margin)
        pair = pairs[index]
        rows.append(
            {
                "id": pair.id,
                "origin": pair.origin,
                "chosen_logp": logp[0],
                "rejected_logp": logp[1],
                "chosen_tokens": count[0],
                "rejected_tokens": count[1],
                "margin": margin,
                "preferred": margin > 0,
            }
        )
    low, high = bootstrap_interval(preferred, seed=seed)
    metrics: dict[str, Any] = {
        "accuracy": sum(preferred) / len(preferred),
        "ci_low": low,
        "ci_high": high,
        "n": len(preferred),
        "mean_margin": sum(margins) / len(margins),
        "ties": sum(m == 0 for m in margins),
        "skipped": len(report.skipped),
        "truncated": report.truncated,
        "method": "chosen preferred when its mean per-token log-probability is higher (ties count as not "
        "preferred); 95% percentile bootstrap over pairs",
        "model": loaded.ref.name,
        "task": task,
        "max_length": max_length,
        **loaded.runtime_info(),
    }
    if reference is not None:
        beta = beta if beta is not None else float((loaded.ref.info or {}).get("beta", DEFAULT_BETA))
        ref = _pair_logps(reference.model, encoded, pad, how.seq2seq, batch_size)
        rewards = (beta * (policy - ref)).tolist()
        won = [r[0] > r[1] for r in rewards]
        for row, ref_logp, reward in zip(rows, ref.tolist(), rewards, strict=True):
            row.update(
                chosen_ref_logp=ref_logp[0],
                rejected_ref_logp=ref_logp[1],
                chosen_reward=reward[0],
                rejected_reward=reward[1],
                reward_preferred=reward[0] > reward[1],
            )
        reward_low, reward_high = bootstrap_interval(won, seed=seed)
        metrics.update(
            reward_accuracy=sum(won) / len(won),
            reward_ci_low=reward_low,
            reward_ci_high=reward_high,
            mean_reward_margin=sum(r[0] - r[1] for r in rewards) / len(rewards),
            beta=beta,
            reference_model=reference.ref.name,
        )
    seconds = time.perf_counter() - started
    metrics.update(seconds=round(seconds, 2), pairs_per_s=round(len(rows) / seconds, 2) if seconds else None)
    write_evaluation(out_dir, rows, metrics)
    return metrics


def _pair_logps(model, encoded: Sequence[PairExample], pad: int, seq2seq: bool, batch_size: int) -> torch.Tensor:
    """``[pairs, 2]`` summed log-probs (chosen, rejected) of ``model``; under several processes each
    scores its share of the pairs (``item_shard``) and the shares are gathered in order."""
    mine = item_shard(len(encoded))
    local = reference_logps(model, encoded[mine.start : mine.stop], pad, seq2seq, batch_size).tolist() if mine else []
    return torch.tensor(gather_in_order(local), dtype=torch.float64).reshape(len(encoded), 2)


def _scored_tokens(labels: Sequence[int], seq2seq: bool) -> int:
    """Tokens whose log-probability is summed: a causal row's first position predicts nothing."""
    from medtune.data.examples import IGNORE

    return sum(label != IGNORE for label in (labels if seq2seq else labels[1:]))


def pair_task(loaded: LoadedModel, prompt_format: str) -> str:
    """How ``eval --task preference`` encodes pairs: ``--prompt-format``, or else what the model was trained for.

    ``auto``: ``translation`` for a seq2seq model or a medtune translation model, else ``chat``.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise MedtuneError(f"Unknown --prompt-format {prompt_format!r}; choose one of: {', '.join(PROMPT_FORMATS)}.")
    if prompt_format != "auto":
        return prompt_format
    trained = (loaded.ref.info or {}).get("task")
    return "translation" if loaded.is_seq2seq or trained == "translation" else "chat"


def evaluate_preference_file(
    model: str,
    data: str,
    out_dir: Path,
    prompt_format: str = "auto",
    limit: int | None = None,
    batch_size: int = 8,
    max_length: int = 1024,
    seed: int = 42,
    src_lang: str = "en",
    tgt_lang: str = "es",
    log: Callable[[str], Any] = print,
    device: str = "auto",
    dtype: str = "auto",
) -> dict:
    """``medtune eval --task preference``: load the pairs and the model (and a DPO/KTO model's recorded
    reference), then :func:`evaluate_preference`.

    Raises:
        MedtuneError: unreadable pairs, an unknown model or a reference model that is gone, and what
            :func:`evaluate_preference` raises.
    """
    from medtune.data.preference import load_preference_pairs
    from medtune.models.loading import load_model

    pairs, _ = load_preference_pairs(data, name="eval", log=log)
    loaded = load_model(model, dtype=dtype, device=device, log=log)
    task = pair_task(loaded, prompt_format)
    reference = None
    recorded = (loaded.ref.info or {}).get("reference_model")
    if recorded:
        log(f"{model} was trained by {loaded.ref.info.get('objective', 'preference training')} against {recorded}.")
        try:
            reference = load_model(recorded, dtype=dtype, device=device, log=log)
        except MedtuneError as exc:
            raise MedtuneError(
                f"{model} records its reference model {recorded!r} (in medtune_model.json), which cannot be "
                f"loaded: {exc}"
            ) from None
    return evaluate_preference(
        loaded, pairs[:limit] if limit else pairs, out_dir, task, batch_size, reference, seed, max_length,
        src_lang, tgt_lang, log=log,
    )  # fmt: skip
