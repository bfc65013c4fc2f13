"""medtune's own output layer for causal LMs: the decoder body, then the head on chosen rows only.

With a 262k-token vocabulary the output layer costs more than the decoder body, so scorers run the
body, pick the hidden states they need (labelled positions, the last prompt position) and apply the
output layer to those rows only, in chunks, so the full (rows x vocab) logits never exist at once.
This re-implements the model's head (a linear layer, plus Gemma 2's logit soft-capping): use it only
through :mod:`medtune.models.scoring`, whose parity probe checks it against the model's own forward.
It reads the head's whole weight outside the model's forward, which an engine that shards parameters
across processes (FSDP2, DeepSpeed ZeRO-3) does not allow: :func:`sharded_head_reason` tells the
scorer so, and the model's own forward (which gathers the weight itself) scores instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medtune.models.adapters import unwrap_model

CHUNK_ROWS = 128  # output-layer rows per chunk: bounds the (rows x vocab) logits held at once


def upcast(x: torch.Tensor) -> torch.Tensor:
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
        grad_weight = upcast(torch.zeros_like(weight)) if need_weight_grad else None
        total = upcast(hidden.new_zeros(()))
        for start in range(0, hidden.shape[0], CHUNK_ROWS):
            h = hidden[start : start + CHUNK_ROWS]
            t = targets[start : start + CHUNK_ROWS]
            z = upcast(h @ weight.T)
            logits = torch.tanh(z / softcap) * softcap if softcap else z
            cap_slope = 1 - (logits / softcap) ** 2 if softcap else None
            target_logits = logits.gather(1, t[:, None]).squeeze(1)
            # softmax and log-sum-exp from one pass, in place on this chunk's own logits buffer: the
            # (rows x vocab) float32 work dominates a bf16 step, so every extra pass shows in tokens/s.
            top = logits.amax(dim=-1, keepdim=True)
            d = logits.sub_(top).exp_()
            norm = d.sum(dim=-1, keepdim=True)
            total += (top + norm.log()).squeeze(1).sub(target_logits).sum()
            d.div_(norm)  # d(loss)/d(logits) = softmax - onehot
            d[torch.arange(len(t)), t] -= 1
            if softcap:
                d *= cap_slope
            d = d.to(weight.dtype)
            grad_hidden[start : start + CHUNK_ROWS] = d @ weight
            if grad_weight is not None:
                grad_weight += upcast(d.T @ h)
        ctx.save_for_backward(grad_hidden, grad_weight if grad_weight is not None else torch.empty(0))
        ctx.need_weight_grad = need_weight_grad
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        gw = (grad_weight * grad_total).to(grad_hidden.dtype) if ctx.need_weight_grad else None
        return grad_hidden * grad_total.to(grad_hidden.dtype), gw, None, None


class _LinearTokenNLL(torch.autograd.Function):
    """Per-row cross-entropy of ``hidden @ weight.T`` (optionally soft-capped), chunked over rows.

    Sequence log-probs (DPO, KTO) give each row its own upstream gradient g, so, unlike
    :class:`_LinearCrossEntropy`, the whole gradient cannot be formed in the forward pass. The hidden
    rows' part still can, per row: d(nll)/d(hidden) = (softmax - onehot) @ W, which the backward only
    scales by g, at SFT's cost. A trainable output layer (full fine-tuning) needs
    Σ g (softmax - onehot)ᵀ hidden, which depends on g: the forward then keeps each row's
    log-sum-exp and the backward recomputes each chunk's logits, one extra head matmul per chunk.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, softcap):
        ctx.recompute = weight.requires_grad
        if ctx.recompute:
            nll, lse = _chunked_token_nll(hidden, weight, targets, softcap)
            ctx.save_for_backward(hidden, weight, targets, lse)
            ctx.softcap = softcap
            # the backward pass runs outside autocast: recompute the logits under the forward's autocast
            device = hidden.device.type
            ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        else:
            row_grads = torch.empty_like(hidden)
            nll, _ = _chunked_token_nll(hidden, weight, targets, softcap, row_grads)
            ctx.save_for_backward(row_grads)
        return nll

    @staticmethod
    def backward(ctx, grad_nll):
        if not ctx.recompute:
            (row_grads,) = ctx.saved_tensors
            return row_grads * grad_nll[:, None].to(row_grads.dtype), None, None, None
        hidden, weight, targets, lse = ctx.saved_tensors
        grad_hidden = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
        grad_weight = upcast(torch.zeros_like(weight))
        device, autocast, autocast_dtype = ctx.autocast
        with torch.autocast(device, dtype=autocast_dtype, enabled=autocast):
            for start in range(0, hidden.shape[0], CHUNK_ROWS):
                rows = slice(start, start + CHUNK_ROWS)
                logits, slope = _capped_logits(hidden[rows], weight, ctx.softcap)  # the extra head matmul
                d = _softmax_minus_onehot(logits, slope, lse[rows], targets[rows])
                d = (d * grad_nll[rows, None].to(d.dtype)).to(weight.dtype)
                if grad_hidden is not None:
                    grad_hidden[rows] = d @ weight
                grad_weight += upcast(d.T @ hidden[rows])
        return grad_hidden, grad_weight.to(weight.dtype), None, None


def _capped_logits(
    rows: torch.Tensor, weight: torch.Tensor, softcap: float | None, with_slope: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(``rows @ weight.T`` upcast from half precision and soft-capped when ``softcap`` is set, the
    soft-cap's slope d(capped)/d(z) when capped and ``with_slope``, else None)."""
    z = upcast(rows @ weight.T)
    if not softcap:
        return z, None
    logits = torch.tanh(z / softcap) * softcap
    return logits, 1 - (logits / softcap) ** 2 if with_slope else None


def _softmax_minus_onehot(
    logits: torch.Tensor, slope: torch.Tensor | None, lse: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """d(nll)/d(z) of each row: (softmax - onehot), times the soft-cap's slope; in place on ``logits``."""
    d = logits.sub_(lse[:, None]).exp_()
    d[torch.arange(len(targets), device=targets.device), targets] -= 1
    return d * slope if slope is not None else d


def _chunked_token_nll(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    softcap: float | None,
    row_grads: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-row cross-entropy, per-row log-sum-exp) of the output layer, chunk by chunk; with
    ``row_grads`` ([rows, d]), also each row's d(nll)/d(hidden) written into it.

    The one computation behind every :func:`linear_token_nll` path, so that a score taken without
    gradient (a reference pass) is bit-identical to the same score taken with one (the policy).
    """
    nll = upcast(hidden.new_empty(hidden.shape[0]))
    lse = torch.empty_like(nll)
    for start in range(0, hidden.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        logits, slope = _capped_logits(hidden[rows], weight, softcap, with_slope=row_grads is not None)
        target_logits = logits.gather(1, targets[rows, None]).squeeze(1)
        # log-sum-exp in place on the chunk's own buffer, as _LinearCrossEntropy does: no second
        # (rows x vocab) buffer, and the exponentials serve the softmax below
        top = logits.amax(dim=-1, keepdim=True)
        exps = logits.sub_(top).exp_()
        norm = exps.sum(dim=-1, keepdim=True)
        lse[rows] = (top + norm.log()).squeeze(1)
        nll[rows] = lse[rows] - target_logits
        if row_grads is not None:
            d = exps.div_(norm)  # softmax
            d[torch.arange(d.shape[0], device=d.device), targets[rows]] -= 1
            if slope is not None:
                d *= slope
            row_grads[rows] = d.to(weight.dtype) @ weight
    return nll, lse


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None = None
) -> torch.Tensor:
    """Summed cross-entropy of the output layer applied to ``hidden`` (rows x d), in row chunks."""
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearCrossEntropy.apply(hidden, weight, targets, softcap)
    total = upcast(hidden.new_zeros(()))
    for start in range(0, hidden.shape[0], CHUNK_ROWS):
        z = upcast(hidden[start : start + CHUNK_ROWS] @ weight.T)
        logits = torch.tanh(z / softcap) * softcap if softcap else z
        total += F.cross_entropy(logits, targets[start : start + CHUNK_ROWS], reduction="sum")
    return total


def sharded_head_reason(model) -> str | None:
    """Why the fused path cannot read the output layer's weight, or None when it can.

    Outside the model's forward, FSDP2 keeps each parameter as a ``DTensor`` holding this process's
    shard, and DeepSpeed ZeRO-3 as an empty tensor with its real size in ``ds_numel``; FSDP1 and other
    engines leave an empty or flattened tensor. Only the model's own forward gathers the whole weight.
    """
    head = unwrap_model(model).get_output_embeddings()
    weight = getattr(head, "weight", None)
    if weight is None:
        return None
    if _is_dtensor(weight) and not all(placement.is_replicate() for placement in weight.placements):
        return (
            f"its output layer's weight is sharded across processes (FSDP2 DTensor, placements {weight.placements}, "
            f"local shard {tuple(weight.to_local().shape)} of {tuple(weight.shape)})"
        )
    if hasattr(weight, "ds_numel"):
        return (
            f"its output layer's weight is a DeepSpeed ZeRO-3 partitioned parameter ({weight.ds_numel} elements, "
            f"{weight.numel()} held here)"
        )
    expected = (getattr(head, "out_features", None), getattr(head, "in_features", None))
    if weight.numel() == 0 or (None not in expected and tuple(weight.shape) != expected):
        return (
            f"its output layer's weight has shape {tuple(weight.shape)} instead of {expected} (flattened or "
            f"emptied by a sharding engine)"
        )
    return None


def _is_dtensor(tensor: torch.Tensor) -> bool:
    if not torch.distributed.is_available():  # builds without distributed support have no DTensor
        return False
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def model_inputs(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch's ``input_ids`` and ``attention_mask`` or ``position_ids`` (packed documents), on
    the device of the model's output layer."""
    device = unwrap_model(model).get_output_embeddings().weight.device
    return {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "position_ids") if k in batch}


def decoder_hidden_states(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Final hidden states ``[batch, length, hidden]`` of a causal LM's body, without the output layer.

    ``batch`` holds ``input_ids`` and an ``attention_mask``, or ``position_ids`` for packed
    documents (positions restarting per document instead of a mask).
    """
    lm = unwrap_model(model)
    body = lm.model if hasattr(lm, "model") else lm.get_decoder()
    return body(**model_inputs(model, batch), use_cache=False).last_hidden_state


def head_logits(model, hidden_rows: torch.Tensor) -> torch.Tensor:
    """medtune's output layer on some hidden states (``[n, hidden]`` -> ``[n, vocab]``): the model's
    output embedding, soft-capped when the config asks for it (Gemma 2), upcast from half precision."""
    lm = unwrap_model(model)
    logits = upcast(lm.get_output_embeddings()(hidden_rows))
    cap = getattr(lm.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def head_cross_entropy(model, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy of medtune's output layer on ``rows`` against ``targets``, with gradient:
    the chunked fused kernel for a plain bias-free linear head, the plain path for anything else
    (e.g. a head with LoRA adapters)."""
    lm = unwrap_model(model)
    head = lm.get_output_embeddings()
    if getattr(head, "bias", None) is not None or type(head) is not torch.nn.Linear:
        return F.cross_entropy(head_logits(model, rows), targets, reduction="sum")
    return linear_cross_entropy(rows, head.weight, targets, getattr(lm.config, "final_logit_softcapping", None))


def linear_token_nll(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None = None
) -> torch.Tensor:
    """Per-row cross-entropy ``[rows]`` of the output layer applied to ``hidden`` (rows x d), in row
    chunks, differentiable (each row may receive its own upstream gradient)."""
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        return _LinearTokenNLL.apply(hidden, weight, targets, softcap)
    return _chunked_token_nll(hidden, weight, targets, softcap)[0]


def head_token_nll(model, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy ``[rows]`` (float32 or wider) of medtune's output layer, with gradient
    when enabled: the chunked fused kernel for a plain bias-free linear head (the same numbers with
    and without gradient), the model's head module for anything else (e.g. a head with LoRA)."""
    lm = unwrap_model(model)
    head = lm.get_output_embeddings()
    if getattr(head, "bias", None) is None and type(head) is torch.nn.Linear:
        return linear_token_nll(rows, head.weight, targets, getattr(lm.config, "final_logit_softcapping", None))
    if torch.is_grad_enabled():
        return F.cross_entropy(head_logits(model, rows), targets, reduction="none")
    nll = torch.empty(len(targets), dtype=torch.float32, device=rows.device)
    for start in range(0, len(targets), CHUNK_ROWS):
        logits = head_logits(model, rows[start : start + CHUNK_ROWS])
        nll[start : start + CHUNK_ROWS] = F.cross_entropy(logits, targets[start : start + CHUNK_ROWS], reduction="none")
    return nll
