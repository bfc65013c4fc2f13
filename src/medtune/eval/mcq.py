"""Multiple-choice evaluation (MedMCQA, PubMedQA, the demo set): accuracy with a bootstrap interval.

The prompt is the one qa-sft training uses: the model's chat template with few-shot questions as
earlier turns, then the question, then ``Answer:`` opening the assistant's turn. Two ways to read
the model's choice:

* ``loglik``: the log-likelihood of each letter continuation (" A", " B", ...) after ``Answer:``,
  as MMLU-style harnesses score lettered options; one forward pass per question.
* ``generate``: greedy decoding, then :func:`medtune.eval.letters.extract_letter` on the reply.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medtune.data.chat_template import ensure_chat_template, render_chat_prompt, stop_token_ids, template_family
from medtune.data.mcq import MCQItem
from medtune.data.prompts import ANSWER_PREFIX, mcq_answer_text, mcq_to_messages, mcq_user_message
from medtune.errors import MedtuneError
from medtune.eval.letters import extract_letter
from medtune.eval.loglik import continuation_log_probs
from medtune.eval.out_folder import write_evaluation
from medtune.eval.significance import bootstrap_interval
from medtune.generate.engine import SamplingSettings, sample_texts
from medtune.models.loading import LoadedModel
from medtune.runs import is_main_process
from medtune.sharding import gather_in_order, item_shard

MODES = ("loglik", "generate")


@dataclass
class MCQPrompt:
    """A question's prompt (text and token ids), and what was cut to fit the context window."""

    text: str
    ids: list[int]
    context_words_dropped: int = 0
    few_shot_dropped: int = 0

    @property
    def truncated(self) -> bool:
        return bool(self.context_words_dropped or self.few_shot_dropped)


def uses_chat_template(tokenizer) -> bool:
    """True when the tokenizer has a chat template or belongs to a family medtune has one for."""
    return bool(getattr(tokenizer, "chat_template", None)) or template_family(tokenizer) is not None


def mcq_prompt_text(
    tokenizer, item: MCQItem, few_shot: Sequence[MCQItem], chat: bool, context: str | None = None
) -> str:
    """The prompt text for one question, ending in ``Answer:``.

    ``chat``: rendered with the chat template (few-shot questions as earlier user/assistant turns,
    then the generation prompt); otherwise the same texts as plain blocks separated by blank lines.
    ``context`` overrides the item's context (``""`` drops it).
    """
    if chat:
        messages = [message for example in few_shot for message in mcq_to_messages(example)]
        messages.append({"role": "user", "content": mcq_user_message(item, context)})
        return render_chat_prompt(tokenizer, messages, add_generation_prompt=True) + ANSWER_PREFIX
    blocks = [text for example in few_shot for text in (mcq_user_message(example), mcq_answer_text(example))]
    return "\n\n".join([*blocks, mcq_user_message(item, context), ANSWER_PREFIX])


def encode_mcq_prompt(tokenizer, item: MCQItem, few_shot: Sequence[MCQItem], chat: bool, budget: int) -> MCQPrompt:
    """Token ids of a question's prompt, cut to at most ``budget`` tokens.

    Only the context is cut, from the left and at word starts; when the prompt does not fit even
    without context, few-shot examples are dropped (oldest first) and the context fitted again.

    Raises:
        MedtuneError: the question, options and instruction alone exceed the budget.
    """

    def encode(shots: Sequence[MCQItem], context: str | None = None) -> tuple[str, list[int]]:
        text = mcq_prompt_text(tokenizer, item, shots, chat, context)
        return text, tokenizer(text, add_special_tokens=not chat)["input_ids"]  # a rendered template holds BOS

    text, ids = encode(few_shot)
    if len(ids) <= budget:
        return MCQPrompt(text, ids)
    starts = [m.start() for m in re.finditer(r"\S+", item.context or "")]
    for dropped_shots in range(len(few_shot) + 1):
        shots = few_shot[dropped_shots:]
        bare = encode(shots, "")
        if len(bare[1]) > budget:
            continue
        # Smallest number of leading words to drop; dropping all of them (``bare``) fits.
        low, high, best = 0, len(starts), bare
        while low < high:
            middle = (low + high) // 2
            candidate = encode(shots, item.context[starts[middle] :])
            if len(candidate[1]) <= budget:
                high, best = middle, candidate
            else:
                low = middle + 1
        return MCQPrompt(*best, low, dropped_shots)
    raise MedtuneError(
        f"{item.origin or item.id}: question {item.id!r} needs {len(encode([], '')[1])} prompt tokens even without "
        f"context or few-shot examples, more than the {budget} available. Raise --max-length (eval.max_length in a recipe)."
    )


def letter_continuations(tokenizer, letters: Sequence[str]) -> dict[str, list[int]]:
    """Token ids of " A", " B", ... as they are tokenised right after ``Answer:``."""
    base = tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"]
    continuations = {}
    for letter in letters:
        full = tokenizer(f"{ANSWER_PREFIX} {letter}", add_special_tokens=False)["input_ids"]
        # Tokenising prefix and letter together keeps the merges the model saw in training.
        tail = full[len(base) :] if full[: len(base)] == base else []
        continuations[letter] = tail or tokenizer(f" {letter}", add_special_tokens=False)["input_ids"]
    return continuations


def _normalisation(mode: str, continuations: dict[str, list[int]]) -> str:
    if mode == "generate":
        return "n/a (letter extracted from generated text)"
    if all(len(ids) == 1 for ids in continuations.values()):
        return "none (single-token letter continuations)"
    return "none (summed log-probability; some letter continuations are several tokens)"


def _softmax(values: list[float]) -> list[float]:
    top = max(values)
    weights = [math.exp(v - top) for v in values]
    return [w / sum(weights) for w in weights]


def _per_subject(items: Sequence[MCQItem], correct: list[bool]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[bool]] = {}
    for item, ok in zip(items, correct, strict=True):
        groups.setdefault(item.subject or "(none)", []).append(ok)
    return {s: {"accuracy": round(sum(g) / len(g), 4), "n": len(g)} for s, g in sorted(groups.items())}


def evaluate_mcq(
    loaded: LoadedModel,
    items: Sequence[MCQItem],
    out_dir: Path,
    mode: str = "loglik",
    few_shot: Sequence[MCQItem] = (),
    batch_size: int = 8,
    max_length: int = 1024,
    max_new_tokens: int = 32,
    seed: int = 42,
    n_bootstrap: int = 1000,
    label: str = "mcq",
) -> dict:
    """Answer every question with the model, score it, and write ``metrics.json`` and ``outputs.jsonl``.

    Under several processes each answers its share of the questions (``item_shard``) and the answers
    are gathered in order: every process returns the metrics of one, the main one writes.

    Args:
        loaded: a causal LM and its tokenizer.
        items: the questions to score.
        out_dir: folder for the two files (created).
        mode: ``loglik`` (letter log-likelihoods) or ``generate`` (greedy reply, letter extracted).
        few_shot: solved questions shown before each question (not scored).
        batch_size: sequences per forward pass / generation batch.
        max_length: prompt window in tokens, capped at the model's ``max_position_embeddings``;
            room for the letter (loglik) or the reply (``max_new_tokens``, generate) is kept free.
        max_new_tokens: longest reply in generate mode.
        seed: seed of the bootstrap resamples.
        n_bootstrap: bootstrap resamples for the 95% interval.
        label: progress-bar label.
    Returns:
        Metrics: accuracy, ci_low, ci_high, n, correct, mode, normalisation, per_subject (when any
        item has a subject), truncated, seconds, items_per_s, unparsed (generate), few_shot, model.
    Raises:
        MedtuneError: unknown mode, no questions, a seq2seq model, or a question too long for the window.
    """
    if mode not in MODES:
        raise MedtuneError(f"Unknown MCQ mode {mode!r}; choose one of: {', '.join(MODES)}.")
    if not items:
        raise MedtuneError("No questions to evaluate: the data set is empty after validation and --limit.")
    if loaded.is_seq2seq:
        raise MedtuneError(f"{loaded.ref.name} is an encoder-decoder (translation) model; MCQ needs a causal LM.")
    model, tokenizer = loaded.model, loaded.tokenizer
    model.eval()
    chat = uses_chat_template(tokenizer)
    if chat:
        ensure_chat_template(tokenizer)
    window = min(max_length, getattr(model.config, "max_position_embeddings", None) or max_length)
    letters = sorted({letter for item in items for letter in item.options})
    continuations = letter_continuations(tokenizer, letters)
    reserve = max_new_tokens if mode == "generate" else max(len(c) for c in continuations.values()) - 1
    if window - reserve < 8:
        raise MedtuneError(
            f"--max-length {max_length} (eval.max_length in a recipe) leaves no room for a prompt; "
            f"use at least {reserve + 64}."
        )
    # Every process encodes every prompt: a question too long for the window fails on all of them.
    prompts = [encode_mcq_prompt(tokenizer, item, list(few_shot), chat, window - reserve) for item in items]
    mine = item_shard(len(items))  # several processes: each answers its share of the questions
    started = time.perf_counter()
    share, shown = slice(mine.start, mine.stop), label if is_main_process() else None  # one progress bar
    answers = _answer(
        loaded, items[share], prompts[share], mode, continuations, chat, batch_size, max_new_tokens, shown
    )
    records = gather_in_order(answers)
    seconds = max(gather_in_order([time.perf_counter() - started]))  # the slowest process's

    correct = [r["predicted"] == item.answer for r, item in zip(records, items, strict=True)]
    low, high = bootstrap_interval(correct, n_bootstrap, seed)
    metrics: dict[str, Any] = {
        "accuracy": round(sum(correct) / len(correct), 4),
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "n": len(items),
        "correct": sum(correct),
        "mode": mode,
        "normalisation": _normalisation(mode, continuations),
        "prompt_format": "chat template" if chat else "plain text",
        "few_shot": len(few_shot),
        "truncated": sum(p.truncated for p in prompts),
        "prompt_tokens_mean": round(sum(len(p.ids) for p in prompts) / len(prompts), 1),
        "max_length": window,
        "bootstrap": {"resamples": n_bootstrap, "seed": seed, "level": 0.95, "method": "percentile"},
        "seconds": round(seconds, 2),
        "items_per_s": round(len(items) / seconds, 3) if seconds else None,
        "model": loaded.ref.name,
        **loaded.runtime_info(),
    }
    if mode == "generate":
        metrics["unparsed"] = sum(r["predicted"] is None for r in records)
    if any(item.subject for item in items):
        metrics["per_subject"] = _per_subject(items, correct)
    rows = [
        {
            "id": item.id,
            "subject": item.subject,
            "answer": item.answer,
            **record,
            "correct": ok,
            "truncated": prompt.truncated,
            "context_words_dropped": prompt.context_words_dropped,
            "few_shot_dropped": prompt.few_shot_dropped,
        }
        for item, record, ok, prompt in zip(items, records, correct, prompts, strict=True)
    ]
    write_evaluation(out_dir, rows, metrics)
    return metrics


def _answer(
    loaded: LoadedModel,
    items: Sequence[MCQItem],
    prompts: Sequence[MCQPrompt],
    mode: str,
    continuations: dict[str, list[int]],
    chat: bool,
    batch_size: int,
    max_new_tokens: int,
    label: str | None,
) -> list[dict[str, Any]]:
    """The model's answer to each question (``predicted`` letter, and the scores or reply it came from)."""
    model, tokenizer = loaded.model, loaded.tokenizer
    if not items:
        return []
    if mode == "loglik":
        requests = [(p.ids, [continuations[x] for x in item.options]) for p, item in zip(prompts, items, strict=True)]
        scores = continuation_log_probs(model, tokenizer.pad_token_id, requests, batch_size, progress=label)
        records = []
        for item, option_scores in zip(items, scores, strict=True):
            best = max(range(len(option_scores)), key=lambda k: option_scores[k])  # ties: the earlier letter
            records.append(
                {
                    "predicted": list(item.options)[best],
                    "option_logprobs": dict(zip(item.options, option_scores, strict=True)),
                    "option_probs": dict(zip(item.options, _softmax(option_scores), strict=True)),
                }
            )
        return records
    settings = SamplingSettings(max_new_tokens=max_new_tokens).with_stop_tokens(stop_token_ids(tokenizer))
    texts = [p.text for p in prompts]
    replies = sample_texts(model, tokenizer, texts, settings, None, batch_size, not chat, progress=label)
    return [
        {"predicted": extract_letter(r.strip(), item.options), "generated": r.strip()}
        for r, item in zip(replies, items, strict=True)
    ]


def evaluate_mcq_file(
    model: str,
    data: str,
    out_dir: Path,
    mode: str = "loglik",
    few_shot: int = 0,
    few_shot_data: str | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    max_length: int = 1024,
    max_new_tokens: int = 32,
    seed: int = 42,
    log: Callable[[str], Any] = print,
    device: str = "auto",
    dtype: str = "auto",
) -> dict:
    """Load questions and a model by name, then :func:`evaluate_mcq` (the ``medtune eval --task mcq`` command).

    Few-shot examples come from ``few_shot_data`` or, by default, from ``data`` (those are then not
    scored); they are chosen by ``seed``. ``limit`` keeps the first N remaining questions.

    Raises:
        MedtuneError: bad mode or counts, unreadable data, unknown model, and what :func:`evaluate_mcq` raises.
    """
    from medtune.data.mcq import load_mcq
    from medtune.data.sampling import few_shot_examples, sample_items
    from medtune.models.loading import load_model

    if mode not in MODES:
        raise MedtuneError(f"Unknown --mode {mode!r}; choose one of: {', '.join(MODES)}.")
    if few_shot < 0 or (limit is not None and limit < 1):
        raise MedtuneError("--few-shot must be 0 or more and --limit 1 or more.")
    items, _ = load_mcq(data, name="eval", log=log)
    pool = load_mcq(few_shot_data, name="few-shot", log=log)[0] if few_shot and few_shot_data else None
    examples, items = few_shot_examples(
        items, few_shot, lambda found, k: sample_items(found, k, seed), data, "questions", pool
    )
    if limit:
        items = items[:limit]
    loaded = load_model(model, dtype=dtype, device=device, log=log)
    return evaluate_mcq(
        loaded, items, out_dir, mode, examples, batch_size, max_length, max_new_tokens, seed, label=f"mcq-{mode}"
    )
