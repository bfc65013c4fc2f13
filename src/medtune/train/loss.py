"""Token and sequence scores for training: summed cross-entropy over target tokens (SFT) and each
row's summed target log-probability (the preference objectives).

Both go through :mod:`medtune.models.scoring`, which evaluation shares: causal LMs through medtune's
fused output layer where a parity probe shows it equals the model's own (else the model's own
forward), encoder-decoder models (Marian) through their own forward, the decoder fed the shifted labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medtune.models.scoring import (
    causal_target_loss,
    labelled_token_counts,
    seq2seq_labelled_logits,
    sequence_logps,
)

__all__ = ["labelled_token_counts", "seq2seq_target_loss", "sequence_logps", "target_loss"]


def seq2seq_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of an encoder-decoder batch, and their count."""
    logits, targets, keep = seq2seq_labelled_logits(model, batch)
    return F.cross_entropy(logits, targets, reduction="sum"), int(keep.sum())


def target_loss(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over a batch's target tokens and their count, for either kind of model."""
    return seq2seq_target_loss(model, batch) if seq2seq else causal_target_loss(model, batch)
