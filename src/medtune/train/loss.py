"""Token-level cross-entropy computed only where labels exist.

With a 262k-token vocabulary the output layer dominates the cost, so for causal LMs we run the
decoder body, pick the hidden states that predict a labelled token, and apply the output layer
to those rows only. The result equals the standard shifted loss (a test checks this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE


def _unwrap(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


CHUNK_ROWS = 128  # output-layer rows per chunk: bounds the (rows x vocab) logits held at once


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast for a stable softmax; float32/64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T`` (optionally soft-capped), chunked over rows.

    The gradient is computed chunk by chunk during the forward pass and kept (it is only the size
    of ``hidden``), so the full (rows x vocab) logits and their gradient never exist at once and
    nothing is recomputed. The loss is a leaf of the graph, so its incoming gradient is a scalar.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap):
        need_weight_grad = weight.requires_grad
        grad_hidden = torch.empty_like(hidden)
        grad_weight = _upcast(torch.zeros_like(weight)) if need_weight_grad else None
        total = _upcast(hidden.new_zeros(()))
        for start in range(0, hidden.shape[0], CHUNK_ROWS):
            h = hidden[start : start + CHUNK_ROWS]
            t = targets[start : start + CHUNK_ROWS]
            z = _upcast(h @ weight.T)
            logits = torch.tanh(z / softcap) * softcap if softcap else z
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            d = torch.softmax(logits, dim=-1)  # d(loss)/d(logits) = softmax - onehot
            d[torch.arange(len(t)), t] -= 1
            if softcap:
                d *= 1 - (logits / softcap) ** 2
            d = d.to(weight.dtype)
            grad_hidden[start : start + CHUNK_ROWS] = d @ weight
            if grad_weight is not None:
                grad_weight += _upcast(d.T @ h)
        ctx.save_for_backward(grad_hidden, grad_weight if grad_weight is not None else torch.empty(0))
        ctx.need_weight_grad = need_weight_grad
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        gw = (grad_weight * grad_total).to(grad_hidden.dtype) if ctx.need_weight_grad else None
        return grad_hidden * grad_total.to(grad_hidden.dtype), gw, None, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None = None
) -> torch.Tensor:
    """Summed cross-entropy of the output layer applied to ``hidden`` (rows x d), in row chunks."""
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, softcap)
    total = _upcast(hidden.new_zeros(()))
    for start in range(0, hidden.shape[0], CHUNK_ROWS):
        z = _upcast(hidden[start : start + CHUNK_ROWS] @ weight.T)
        logits = torch.tanh(z / softcap) * softcap if softcap else z
        total += F.cross_entropy(logits, targets[start : start + CHUNK_ROWS], reduction="sum")
    return total


def causal_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of a causal-LM batch, and their count."""
    lm = _unwrap(model)
    body = lm.model if hasattr(lm, "model") else lm.get_decoder()
    # packed documents carry position_ids (restarting per document) instead of an attention mask
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    hidden = body(**inputs, use_cache=False).last_hidden_state[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    head = lm.get_output_embeddings()
    if getattr(head, "bias", None) is not None or type(head) is not torch.nn.Linear:
        logits = head(hidden[keep]).float()  # an unusual head: plain path
        return F.cross_entropy(logits, targets[keep], reduction="sum"), int(keep.sum())
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return linear_cross_entropy(hidden[keep], head.weight, targets[keep], cap), int(keep.sum())


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
