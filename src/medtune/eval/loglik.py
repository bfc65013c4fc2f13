"""Log-likelihoods of chosen tokens from a causal LM, computing the output layer only where needed.

With a 262k-token vocabulary the output layer costs more than the decoder body, so scorers read the
logits only at the positions they need: the last prompt position for a lettered answer, the labelled
positions for perplexity (through :mod:`medtune.models.scoring`, which checks medtune's fused output
layer against the model's own). The numbers equal those of a full forward pass and ``log_softmax``
(tests check both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from medtune.data.examples import Example
from medtune.models.scoring import logits_at, token_nll
from medtune.train.batching import collate


@torch.no_grad()
def row_target_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row summed cross-entropy over labelled tokens of a collated causal batch, and per-row counts.

    :func:`medtune.models.scoring.token_nll` summed per row, so each document or conversation gets its own figure.
    """
    nll, keep = token_nll(model, batch)
    rows = keep.nonzero()[:, 0]
    totals = torch.zeros(keep.shape[0], dtype=torch.float32, device=nll.device).index_add_(0, rows, nll)
    return totals, keep.sum(dim=1)


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
            padded = collate([Example(row.ids, []) for row in batch], pad_id, seq2seq=False)
            places = sorted({(b, target[0]) for b, row in enumerate(batch) for target in row.targets})
            where = torch.zeros(padded["input_ids"].shape, dtype=torch.bool)
            where[[p[0] for p in places], [p[1] for p in places]] = True
            log_probs = torch.log_softmax(logits_at(model, padded, where), dim=-1)  # rows follow `places`
            row_of = {place: n for n, place in enumerate(places)}
            reads = [(row_of[(b, t[0])], t[1], t[2], t[3]) for b, row in enumerate(batch) for t in row.targets]
            values = log_probs[[x[0] for x in reads], [x[1] for x in reads]].tolist()  # one device->host copy
            for (_, _, r, k), value in zip(reads, values, strict=True):
                scores[r][k] += value
            bar.update(len(batch))
    finally:
        bar.close()
    return scores
