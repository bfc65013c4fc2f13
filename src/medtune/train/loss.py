"""Token-level cross-entropy computed only where labels exist.

With a 262k-token vocabulary the output layer dominates the cost, so for causal LMs we run the
decoder body, pick the hidden states that predict a labelled token, and apply the output layer
to those rows only. The result equals the standard shifted loss (a test checks this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medtune.train.batching import IGNORE


def _unwrap(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def causal_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of a causal-LM batch, and their count."""
    lm = _unwrap(model)
    body = lm.model if hasattr(lm, "model") else lm.get_decoder()
    hidden = body(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    hidden = hidden.last_hidden_state[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits = lm.get_output_embeddings()(hidden[keep]).float()
    cap = getattr(lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())


def seq2seq_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of an encoder-decoder batch, and their count."""
    labels = batch["labels"]
    decoder_inputs = _unwrap(model).prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=decoder_inputs)
    keep = labels != IGNORE
    loss = F.cross_entropy(out.logits[keep].float(), labels[keep], reduction="sum")
    return loss, int(keep.sum())


def target_loss(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, int]:
    return seq2seq_target_loss(model, batch) if seq2seq else causal_target_loss(model, batch)
