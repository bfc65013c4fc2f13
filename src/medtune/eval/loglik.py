"""Log-likelihoods of chosen tokens from a causal LM, computing the output layer only where needed.

With a 262k-token vocabulary the output layer costs more than the decoder body, so scorers run the
body over the (right-padded) batch and apply the output layer to the few hidden states they need:
the last prompt position for a lettered answer, the labelled positions for perplexity. The numbers
equal those of a full forward pass and ``log_softmax`` (tests check both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from medtune.data.examples import IGNORE

CHUNK_ROWS = 128  # output-layer rows per chunk: bounds the (rows x vocab) log-probabilities held at once


def _language_model(model):
    """The bare causal LM under a PEFT wrapper (its adapters stay active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_hidden_states(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final hidden states ``[batch, length, hidden]`` of the decoder body, without the output layer.

    Rows must be right-padded (real tokens first), so positions count from 0 as in an unpadded pass.
    """
    lm = _language_model(model)
    body = lm.model if hasattr(lm, "model") else lm.get_decoder()
    device = lm.get_output_embeddings().weight.device
    out = body(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False)
    return out.last_hidden_state


def output_log_probs(model, hidden_rows: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the vocabulary for each given hidden state (``[n, hidden]`` -> ``[n, vocab]``).

    Applies the model's final-logit soft-capping (Gemma) exactly as its own forward pass does.
    """
    lm = _language_model(model)
    logits = lm.get_output_embeddings()(hidden_rows).float()
    cap = getattr(lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.log_softmax(logits, dim=-1)


def pad_right(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token id lists as a right-padded ``input_ids`` tensor and its ``attention_mask``."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


@torch.no_grad()
def row_target_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed cross-entropy over labelled tokens of a collated causal batch, and per-row counts.

    The same computation as :func:`medtune.train.loss.causal_target_loss` (whose result is the sum of
    these rows), kept per row so each document or conversation gets its own figure.
    """
    hidden = decoder_hidden_states(model, batch["input_ids"], batch["attention_mask"])[:, :-1]
    targets = batch["labels"][:, 1:].to(hidden.device)
    keep = targets != IGNORE
    rows_hidden, rows_targets = hidden[keep], targets[keep]
    token_nll = torch.zeros(len(rows_targets), dtype=torch.float32, device=hidden.device)
    for i in range(0, len(rows_targets), CHUNK_ROWS):
        log_probs = output_log_probs(model, rows_hidden[i : i + CHUNK_ROWS])
        token_nll[i : i + CHUNK_ROWS] = F.nll_loss(log_probs, rows_targets[i : i + CHUNK_ROWS], reduction="none")
    rows = keep.nonzero()[:, 0]
    nll = torch.zeros(targets.shape[0], dtype=torch.float32, device=hidden.device).index_add_(0, rows, token_nll)
    return nll, keep.sum(dim=1)


@dataclass
class _ScoringRow:
    """One sequence to run, and the (position, token, request, continuation) log-probs to read from it."""

    ids: list[int]
    targets: list[tuple[int, int, int, int]]


def _scoring_rows(requests: Sequence[tuple[list[int], Sequence[list[int]]]]) -> list[_ScoringRow]:
    rows = []
    for r, (prompt, continuations) in enumerate(requests):
        if not prompt or any(not c for c in continuations):
            raise ValueError(f"request {r}: the prompt and every continuation need at least one token")
        last = len(prompt) - 1
        # Single-token continuations share one row: all are read at the prompt's last position.
        shared = [(last, c[0], r, k) for k, c in enumerate(continuations) if len(c) == 1]
        if shared:
            rows.append(_ScoringRow(list(prompt), shared))
        for k, c in enumerate(continuations):
            if len(c) > 1:
                rows.append(_ScoringRow(list(prompt) + c[:-1], [(last + j, t, r, k) for j, t in enumerate(c)]))
    return rows


@torch.no_grad()
def continuation_log_probs(
    model,
    pad_id: int,
    requests: Sequence[tuple[list[int], Sequence[list[int]]]],
    batch_size: int = 8,
    progress: str | None = None,
) -> list[list[float]]:
    """Summed log-probability of each continuation after its prompt, for many prompts.

    Args:
        model: a causal LM (optionally PEFT-wrapped) in eval mode.
        pad_id: the padding token id (padding is on the right and masked, so its value is irrelevant).
        requests: ``(prompt ids, [continuation ids, ...])`` pairs; prompt ids already hold BOS if any.
        batch_size: sequences per forward pass; sequences are sorted by length to keep padding small.
        progress: a progress-bar label, or ``None`` for no bar.
    Returns:
        For each request, ``log P(continuation | prompt)`` per continuation: one forward pass per
        prompt when every continuation is one token, plus one pass per longer continuation.
    Raises:
        ValueError: an empty prompt or continuation.
    """
    rows = _scoring_rows(requests)
    scores = [[0.0] * len(continuations) for _, continuations in requests]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].ids))
    bar = tqdm(total=len(rows), desc=progress, unit="seq", disable=progress is None, dynamic_ncols=True)
    try:
        for start in range(0, len(order), batch_size):
            batch = [rows[i] for i in order[start : start + batch_size]]
            hidden = decoder_hidden_states(model, *pad_right([row.ids for row in batch], pad_id))
            places = sorted({(b, target[0]) for b, row in enumerate(batch) for target in row.targets})
            where = {place: n for n, place in enumerate(places)}
            log_probs = output_log_probs(model, hidden[[p[0] for p in places], [p[1] for p in places]])
            reads = [(where[(b, t[0])], t[1], t[2], t[3]) for b, row in enumerate(batch) for t in row.targets]
            values = log_probs[[x[0] for x in reads], [x[1] for x in reads]].tolist()  # one device->host copy
            for (_, _, r, k), value in zip(reads, values, strict=True):
                scores[r][k] += value
            bar.update(len(batch))
    finally:
        bar.close()
    return scores
