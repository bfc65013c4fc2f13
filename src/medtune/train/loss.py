"""The training objective's token loss: summed cross-entropy over target tokens, and its count.

Causal LMs are scored by :func:`medtune.models.scoring.causal_target_loss` (medtune's fused output
layer where a parity probe shows it equals the model's own, else the model's own forward);
encoder-decoder models (Marian) through their own forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE
from medtune.models.adapters import unwrap_model
from medtune.models.scoring import causal_target_loss


def seq2seq_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of an encoder-decoder batch, and their count."""
    labels = batch["labels"]
    decoder_inputs = unwrap_model(model).prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=decoder_inputs)
    keep = labels != IGNORE
    loss = F.cross_entropy(out.logits[keep].float(), labels[keep], reduction="sum")
    return loss, int(keep.sum())


def target_loss(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over a batch's target tokens and their count, for either kind of model."""
    return seq2seq_target_loss(model, batch) if seq2seq else causal_target_loss(model, batch)
