"""Token and sequence scores for training: summed cross-entropy over target tokens (SFT) and each
row's summed target log-probability (the preference objectives).

Causal LMs are scored through :mod:`medtune.models.scoring` (medtune's fused output layer where a
parity probe shows it equals the model's own, else the model's own forward); encoder-decoder models
(Marian) through their own forward, with the decoder fed the shifted labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE
from medtune.models.adapters import unwrap_model
from medtune.models.scoring import causal_sequence_logps, causal_target_loss, row_sums


def _seq2seq_labelled_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits at the labelled target positions ``[n, vocab]``, those labels, the ``[batch, target]`` mask)."""
    labels = batch["labels"]
    decoder_inputs = unwrap_model(model).prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=decoder_inputs)
    keep = labels != IGNORE
    return out.logits[keep].float(), labels[keep], keep


def seq2seq_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of an encoder-decoder batch, and their count."""
    logits, targets, keep = _seq2seq_labelled_logits(model, batch)
    return F.cross_entropy(logits, targets, reduction="sum"), int(keep.sum())


def target_loss(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over a batch's target tokens and their count, for either kind of model."""
    return seq2seq_target_loss(model, batch) if seq2seq else causal_target_loss(model, batch)


def seq2seq_sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed log-probability ``[batch]`` of each row's target tokens of an encoder-decoder batch."""
    logits, targets, keep = _seq2seq_labelled_logits(model, batch)
    return -row_sums(F.cross_entropy(logits, targets, reduction="none"), keep)


def sequence_logps(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> torch.Tensor:
    """Summed log-probability ``[rows]`` of each row's labelled tokens (``labels != IGNORE``), float32
    or wider, differentiable when gradients are enabled.

    Causal LMs go through the same fused output layer as training (logits only at answer tokens,
    chunked); rows without a labelled token score 0.
    """
    return seq2seq_sequence_logps(model, batch) if seq2seq else causal_sequence_logps(model, batch)


def labelled_token_counts(batch: dict[str, torch.Tensor], seq2seq: bool) -> torch.Tensor:
    """Number of scored target tokens per row ``[rows]``, as :func:`sequence_logps` counts them (causal
    rows: labels from the second position on, since the first position predicts nothing)."""
    labels = batch["labels"] if seq2seq else batch["labels"][:, 1:]
    return (labels != IGNORE).sum(dim=1)
