"""Perplexity of a causal LM on documents (all tokens) or conversations (assistant tokens only).

Documents are tokenised as BOS (when the tokenizer adds it) + text + EOS and cut into consecutive,
non-overlapping windows of ``max_length`` tokens; every token but the first of a window is predicted
from the tokens before it in that window. Conversations use the chat template and the training label
mask, so the figure is the loss a chat SFT run optimises. Perplexity = exp(total NLL / tokens).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from medtune.data.chat import LAYOUTS, Conversation
from medtune.data.chat_template import encode_conversation
from medtune.data.examples import IGNORE, Example
from medtune.data.ids import stable_ids
from medtune.data.io import columns_of, read_rows, resolve_data_path
from medtune.data.text import Document
from medtune.errors import MedtuneError
from medtune.eval.loglik import row_target_nll
from medtune.eval.out_folder import write_evaluation
from medtune.models.loading import LoadedModel
from medtune.runs import is_main_process
from medtune.sharding import gather_in_order, item_shard
from medtune.train.batching import collate

FORMATS = ("auto", "text", "conversations")


def document_windows(tokenizer, document: Document, max_length: int) -> list[Example]:
    """A document as consecutive windows of at most ``max_length`` tokens, labelled after their first token."""
    ids = list(tokenizer(document.text, add_special_tokens=True)["input_ids"])
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids.append(tokenizer.eos_token_id)
    windows = [ids[start : start + max_length] for start in range(0, len(ids), max_length)]
    return [Example(w, [IGNORE, *w[1:]]) for w in windows if len(w) > 1]  # a lone last token predicts nothing


def _kind(data: Sequence[Document | Conversation]) -> str:
    """``text`` (documents) or ``conversations``; a mix is refused."""
    if all(isinstance(d, Document) for d in data):
        return "text"
    if all(isinstance(d, Conversation) for d in data):
        return "conversations"
    raise MedtuneError("Perplexity data must be all documents or all conversations, not a mix.")


def _examples(loaded: LoadedModel, data: Sequence[Document | Conversation], kind: str, max_length: int):
    """``[(item index, example), ...]`` for a list of documents (``kind`` text) or of conversations."""
    if kind == "text":
        return [(i, ex) for i, d in enumerate(data) for ex in document_windows(loaded.tokenizer, d, max_length)]
    return [(i, encode_conversation(loaded.tokenizer, list(c.messages), max_length)) for i, c in enumerate(data)]


def _method(kind: str, max_length: int) -> str:
    if kind == "text":
        return (
            f"BOS + text + EOS per document, split into consecutive non-overlapping windows of {max_length} tokens; "
            "every token after the first of each window is predicted from the tokens before it in that window"
        )
    return f"assistant tokens only (chat template, end-of-turn included), conversations cut at {max_length} tokens"


@torch.no_grad()
def evaluate_perplexity(
    loaded: LoadedModel,
    data: Sequence[Document] | Sequence[Conversation],
    out_dir: Path,
    max_length: int = 512,
    batch_size: int = 8,
    label: str = "perplexity",
) -> dict:
    """Score documents or conversations and write ``metrics.json`` and ``outputs.jsonl``.

    Under several processes each scores its share of the items (``item_shard``) and the per-item
    figures are gathered in order: every process returns the metrics of one, the main one writes.

    ``outputs.jsonl`` has one row per item: ``id`` (:func:`perplexity_ids`), ``origin``, and the
    item's summed ``nll`` (nats) over its ``tokens`` predicted tokens, the statistics of
    :func:`medtune.eval.significance.paired_perplexity_delta`.

    Args:
        loaded: a causal LM and its tokenizer.
        data: :class:`Document` s (every token counts) or :class:`Conversation` s (assistant tokens only).
        out_dir: folder for the two files (created).
        max_length: window length in tokens, capped at the model's ``max_position_embeddings``.
        batch_size: sequences per forward pass (sorted by length to keep padding small).
        label: progress-bar label.
    Returns:
        Metrics: perplexity, n_tokens, mean_nll, n, kind ("text"/"conversations"), method, sequences,
        max_length, seconds, tokens_per_s, model.
    Raises:
        MedtuneError: no data, mixed data, a seq2seq model, or no token left to predict.
    """
    from tqdm.auto import tqdm

    if not data:
        raise MedtuneError(
            "No documents or conversations to score: the data set is empty after validation and --limit."
        )
    if loaded.is_seq2seq:
        raise MedtuneError(
            f"{loaded.ref.name} is an encoder-decoder (translation) model; perplexity needs a causal LM."
        )
    model = loaded.model
    model.eval()
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", None) or max_length)
    if max_length < 2:
        raise MedtuneError(f"--max-length must be at least 2 tokens for perplexity, got {max_length}.")
    kind = _kind(data)
    mine = item_shard(len(data))  # several processes: each scores its share of the items
    examples = _examples(loaded, data[mine.start : mine.stop], kind, max_length)
    nll = [0.0] * len(mine)
    counts = [0] * len(mine)
    order = sorted(range(len(examples)), key=lambda i: -examples[i][1].length)
    shown = label is not None and is_main_process()
    started = time.perf_counter()
    for start in tqdm(range(0, len(order), batch_size), desc=label, disable=not shown, dynamic_ncols=True):
        chunk = [examples[i] for i in order[start : start + batch_size]]
        batch = collate([example for _, example in chunk], loaded.tokenizer.pad_token_id, seq2seq=False)
        row_nll, row_counts = row_target_nll(model, batch)
        for (item, _), value, count in zip(chunk, row_nll.tolist(), row_counts.tolist(), strict=True):
            nll[item] += value
            counts[item] += count
    seconds = max(gather_in_order([time.perf_counter() - started]))  # the slowest process's
    nll, counts = gather_in_order(nll), gather_in_order(counts)
    n_sequences = sum(gather_in_order([len(examples)]))
    n_tokens = sum(counts)
    if n_tokens == 0:
        raise MedtuneError(f"Nothing to score: the {kind} data has no predicted tokens (only empty or cut-off turns).")
    mean_nll = sum(nll) / n_tokens
    metrics = {
        "perplexity": round(math.exp(mean_nll), 4),
        "mean_nll": round(mean_nll, 6),
        "n_tokens": n_tokens,
        "n": len(data),
        "kind": kind,
        "method": _method(kind, max_length),
        "sequences": n_sequences,
        "max_length": max_length,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(n_tokens / seconds, 1) if seconds else None,
        "model": loaded.ref.name,
        **loaded.runtime_info(),
    }
    rows = [
        {"id": item_id, "origin": d.origin, "nll": v, "tokens": c}
        for item_id, d, c, v in zip(perplexity_ids(data), data, counts, nll, strict=True)
    ]
    write_evaluation(out_dir, rows, metrics)
    return metrics


def perplexity_ids(data: Sequence[Document] | Sequence[Conversation]) -> list[str]:
    """Each item's stable id: its own ``id``, else a hash of the document's text or the conversation's messages."""
    texts = [
        (d.text,) if isinstance(d, Document) else (json.dumps(list(d.messages), ensure_ascii=False, sort_keys=True),)
        for d in data
    ]
    return stable_ids([d.id for d in data], texts)


def detect_format(spec: str) -> str:
    """``conversations`` when the rows have a chat layout's columns, else ``text`` (also for .txt and folders)."""
    path = resolve_data_path(spec) if not spec.startswith("hf:") else None
    if path is not None and (path.is_dir() or path.suffix.lower() == ".txt"):
        return "text"
    found = set(columns_of(read_rows(spec)))
    return "conversations" if any(set(columns) <= found for columns in LAYOUTS.values()) else "text"


def evaluate_perplexity_file(
    model: str,
    data: str,
    out_dir: Path,
    fmt: str = "auto",
    text_col: str = "text",
    limit: int | None = None,
    max_length: int = 512,
    batch_size: int = 8,
    log: Callable[[str], Any] = print,
    device: str = "auto",
    dtype: str = "auto",
) -> dict:
    """Load documents or conversations and a model by name, then :func:`evaluate_perplexity`.

    This is the ``medtune eval --task perplexity`` command; ``limit`` keeps the first N items.

    Raises:
        MedtuneError: an unknown ``fmt``, unreadable data, an unknown model, and what
            :func:`evaluate_perplexity` raises.
    """
    from medtune.data.chat import load_conversations
    from medtune.data.text import load_documents
    from medtune.models.loading import load_model

    if fmt not in FORMATS:
        raise MedtuneError(f"Unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if limit is not None and limit < 1:
        raise MedtuneError("--limit must be 1 or more.")
    kind = detect_format(data) if fmt == "auto" else fmt
    if kind == "conversations":
        items, _ = load_conversations(data, name="eval", log=log)
    else:
        items, _ = load_documents(data, text_col=text_col, name="eval", log=log)
    loaded = load_model(model, dtype=dtype, device=device, log=log)
    return evaluate_perplexity(loaded, items[:limit] if limit else items, out_dir, max_length, batch_size)
