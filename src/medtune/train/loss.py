"""Token-level cross-entropy computed only where labels exist.

With a 262k-token vocabulary the output layer dominates the cost, so for causal LMs we run the
decoder body, pick the hidden states that predict a labelled token, and apply the output layer
to those rows only. The result equals the standard shifted loss (a test checks this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE


def unwrap_model(model):
    """The bare transformers model under a PEFT wrapper (its adapters stay active)."""
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


def decoder_hidden_states(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Final hidden states ``[batch, length, hidden]`` of a causal LM's body, without the output layer.

    ``batch`` holds ``input_ids`` and an ``attention_mask``, or ``position_ids`` for packed
    documents (positions restarting per document instead of a mask).
    """
    lm = unwrap_model(model)
    body = lm.model if hasattr(lm, "model") else lm.get_decoder()
    device = lm.get_output_embeddings().weight.device
    inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    return body(**inputs, use_cache=False).last_hidden_state


def output_logits(model, hidden_rows: torch.Tensor) -> torch.Tensor:
    """The output layer on some hidden states (``[n, hidden]`` -> ``[n, vocab]``), soft-capped as the
    model's own forward pass does (Gemma 2), upcast from half precision."""
    lm = unwrap_model(model)
    logits = _upcast(lm.get_output_embeddings()(hidden_rows))
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def _shifted_targets(hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden rows that predict a label, those labels, the [batch, length-1] mask that chose them)."""
    targets = labels[:, 1:].to(hidden.device)
    keep = targets != IGNORE
    return hidden[:, :-1][keep], targets[keep], keep


def token_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of every labelled token (no gradient), in row chunks, and the mask that places them.

    Returns ``(nll [n_labelled], keep [batch, length-1])``; ``nll`` follows ``keep``'s row-major order.
    """
    with torch.no_grad():
        rows, targets, keep = _shifted_targets(decoder_hidden_states(model, batch), batch["labels"])
        nll = torch.empty(len(targets), dtype=torch.float32, device=rows.device)
        for start in range(0, len(targets), CHUNK_ROWS):
            logits = output_logits(model, rows[start : start + CHUNK_ROWS])
            nll[start : start + CHUNK_ROWS] = F.cross_entropy(
                logits, targets[start : start + CHUNK_ROWS], reduction="none"
            )
    return nll, keep


def causal_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of a causal-LM batch, and their count."""
    if not torch.is_grad_enabled():  # evaluation: no gradient to keep
        nll, keep = token_nll(model, batch)
        return nll.sum(), int(keep.sum())
    lm = unwrap_model(model)
    rows, targets, keep = _shifted_targets(decoder_hidden_states(model, batch), batch["labels"])
    head = lm.get_output_embeddings()
    if getattr(head, "bias", None) is not None or type(head) is not torch.nn.Linear:
        logits = output_logits(model, rows)  # an unusual head: plain path
        return F.cross_entropy(logits, targets, reduction="sum"), int(keep.sum())
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return linear_cross_entropy(rows, head.weight, targets, cap), int(keep.sum())


def seq2seq_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the target tokens of an encoder-decoder batch, and their count."""
    labels = batch["labels"]
    decoder_inputs = unwrap_model(model).prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=decoder_inputs)
    keep = labels != IGNORE
    loss = F.cross_entropy(out.logits[keep].float(), labels[keep], reduction="sum")
    return loss, int(keep.sum())


def target_loss(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, int]:
    return seq2seq_target_loss(model, batch) if seq2seq else causal_target_loss(model, batch)
