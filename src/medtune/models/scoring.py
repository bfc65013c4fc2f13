"""Token scores of a causal LM (training loss, per-token NLL, log-probs at chosen positions), all
through one decision: medtune's fused output layer, or the model's own; and per-sequence log-probs
(:func:`sequence_logps`) of causal and encoder-decoder models, shared by preference training and
evaluation.

medtune's fused output layer (:mod:`medtune.models.fused_head`) re-implements the model's head, and
a model may do more in its own forward: Granite divides the logits by ``logits_scaling``, Cohere
multiplies them by ``logit_scale``, Falcon-H1 by ``lm_head_multiplier``. So the first time a model
is scored, a parity probe runs a few tokens through the model's own ``forward`` and through the
fused path and compares the log-probabilities within the tolerance of the dtype. The fused path is
used only where they agree; otherwise every score comes from the model's own forward with the
logits kept only at the positions that are read (``logits_to_keep``), and one log line says so.
The same fallback, without a probe, serves a model whose output layer is sharded across processes
(FSDP2, DeepSpeed ZeRO-3), since only its own forward gathers the weight.
"""

from __future__ import annotations

import inspect
import logging
import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE
from medtune.models.adapters import unwrap_model
from medtune.models.fused_head import (
    decoder_hidden_states,
    head_cross_entropy,
    head_logits,
    head_token_nll,
    model_inputs,
    sharded_head_reason,
    upcast,
)

logger = logging.getLogger(__name__)

PROBE_TOKENS = 8
# |Δ log-prob| allowed between the two paths: ABSOLUTE + RELATIVE[dtype] * max |logit|. A model's own
# half-precision forward rounds its logits (and its soft-capping steps) to the dtype, the fused path
# upcasts them first, so the difference is a few units in the last place of the largest logit.
ABSOLUTE_TOLERANCE = 1e-4
RELATIVE_TOLERANCE = {torch.float64: 1e-7, torch.float32: 1e-5, torch.bfloat16: 2**-5, torch.float16: 2**-8}
# Config keys of known logit transforms, named in the log line to explain a failed probe.
LOGIT_TRANSFORM_KEYS = ("logits_scaling", "logit_scale", "lm_head_multiplier", "output_multiplier_scale")


@dataclass(frozen=True)
class HeadCheck:
    """The parity probe's verdict for one model."""

    fused: bool  # medtune's fused output layer reproduces the model's own forward
    max_diff: float  # largest |Δ log-prob| over the probe's positions and the whole vocabulary
    tolerance: float
    dtype: torch.dtype  # the dtype the output layer computes in (the autocast dtype under autocast)
    reason: str = ""  # why the model's own output layer is used; empty when fused


_checks: weakref.WeakKeyDictionary[torch.nn.Module, HeadCheck] = weakref.WeakKeyDictionary()  # per unwrapped model


def check_output_layer(model, batch: dict[str, torch.Tensor]) -> HeadCheck:
    """Whether medtune's fused output layer may score ``model``: probed once per model object.

    The probe reads the first few tokens of ``batch`` (its first row), runs them with dropout off
    and no gradient, and restores every module's train/eval mode afterwards. A failed probe is
    logged once, naming the model type and the measured difference.
    """
    lm = unwrap_model(model)
    check = _checks.get(lm)
    if check is None or (check.fused and sharded_head_reason(lm)):  # or sharded since its probe
        check = _probe(lm, _probe_ids(batch))
        _checks[lm] = check
        if not check.fused:
            logger.warning(
                "%s (%s): %s; using the model's own output layer at the scored positions instead "
                "(the same numbers as its forward, more memory than medtune's fused path).",
                getattr(lm.config, "model_type", "model"),
                type(lm).__name__,
                check.reason,
            )
    return check


def _probe_ids(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    ids = batch["input_ids"][0]
    if "attention_mask" in batch:
        ids = ids[batch["attention_mask"][0].bool()]
    return ids[:PROBE_TOKENS][None]


def _compute_dtype(lm) -> torch.dtype:
    weight = lm.get_output_embeddings().weight
    if torch.is_autocast_enabled(weight.device.type):
        return torch.get_autocast_dtype(weight.device.type)
    return weight.dtype


def _probe(lm, ids: torch.Tensor) -> HeadCheck:
    dtype = _compute_dtype(lm)
    sharded = sharded_head_reason(lm)
    if sharded:  # nothing to probe: the fused path cannot read the weight
        return HeadCheck(False, math.inf, math.nan, dtype, sharded)
    modes = [(module, module.training) for module in lm.modules()]
    lm.eval()  # dropout off for the probe only; the modes are restored below
    try:
        with torch.no_grad():
            inputs = model_inputs(lm, {"input_ids": ids})
            own = upcast(lm(**inputs, use_cache=False).logits[0])
            try:
                ours = head_logits(lm, decoder_hidden_states(lm, inputs)[0])
            except (AttributeError, TypeError, RuntimeError) as error:  # a body or head that cannot run apart
                reason = f"its decoder body and output layer cannot be run apart ({type(error).__name__}: {error})"
                return HeadCheck(False, math.inf, math.nan, dtype, reason)
    finally:
        for module, training in modes:
            module.training = training
    if own.shape != ours.shape:
        reason = f"its forward returns logits of shape {tuple(own.shape)}, medtune's output layer {tuple(ours.shape)}"
        return HeadCheck(False, math.inf, math.nan, dtype, reason)
    diff = float((torch.log_softmax(own, -1) - torch.log_softmax(ours, -1)).abs().max())
    scale = float(torch.maximum(own.abs().max(), ours.abs().max()))
    tolerance = ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE.get(dtype, 2**-5) * scale
    if diff <= tolerance:  # False for NaN too
        return HeadCheck(True, diff, tolerance, dtype)
    config = {key: getattr(lm.config, key, None) for key in LOGIT_TRANSFORM_KEYS}
    hint = "".join(f"config {key}={value}; " for key, value in config.items() if value is not None)
    reason = (
        f"its own forward transforms the logits beyond medtune's fused output layer ({hint}max |Δ log-prob| ="
        f" {diff:.3g} > tolerance {tolerance:.2g} on {ids.shape[1]} probe tokens in {str(dtype).removeprefix('torch.')})"
    )
    return HeadCheck(False, diff, tolerance, dtype, reason)


def _own_logits(model, batch: dict[str, torch.Tensor], where: torch.Tensor) -> torch.Tensor:
    """The model's own forward, with logits kept only at the ``True`` positions of ``where``
    (``[batch, length]``): ``[n, vocab]`` in row-major order, upcast from half precision."""
    lm = unwrap_model(model)
    inputs = model_inputs(model, batch)
    where = where.to(inputs["input_ids"].device)
    if "logits_to_keep" in inspect.signature(lm.forward).parameters:
        logits = lm(**inputs, use_cache=False, logits_to_keep=where).logits
    else:
        logits = lm(**inputs, use_cache=False).logits
    return upcast(logits[where] if logits.dim() == 3 else logits)  # 3-d: the model kept every position


def logits_at(model, batch: dict[str, torch.Tensor], where: torch.Tensor) -> torch.Tensor:
    """Logits ``[n, vocab]`` (float32 or wider) at the ``True`` positions of ``where`` (``[batch, length]``),
    in row-major order, exactly as the model's own forward gives them."""
    if check_output_layer(model, batch).fused:
        hidden = decoder_hidden_states(model, batch)
        return head_logits(model, hidden[where.to(hidden.device)])
    return _own_logits(model, batch, where)


def _labelled(batch: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(the labels that positions predict ``[n]``, the ``[batch, length-1]`` mask of those positions)."""
    targets = batch["labels"][:, 1:].to(device)
    keep = targets != IGNORE
    return targets[keep], keep


def _own_labelled_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the model's own logits at the positions that predict a label, those labels, the mask of them)."""
    targets, keep = _labelled(batch, batch["labels"].device)
    logits = _own_logits(model, batch, F.pad(keep, (0, 1), value=False))  # the last position predicts nothing
    return logits, targets.to(logits.device), keep.to(logits.device)


def token_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of every labelled token of a causal batch (no gradient), and the mask that places them.

    Returns ``(nll [n_labelled], keep [batch, length-1])``; ``nll`` follows ``keep``'s row-major order.
    """
    with torch.no_grad():
        return labelled_token_nll(model, batch)


def labelled_token_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`token_nll` with gradient when enabled: each labelled token's cross-entropy ``[n_labelled]``
    (fused head where the probe allows, else the model's own logits at those positions) and ``keep``."""
    if check_output_layer(model, batch).fused:
        hidden = decoder_hidden_states(model, batch)
        targets, keep = _labelled(batch, hidden.device)
        return head_token_nll(model, hidden[:, :-1][keep], targets), keep
    logits, targets, keep = _own_labelled_logits(model, batch)
    return F.cross_entropy(logits, targets, reduction="none"), keep


def row_sums(token_values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Sum per row ``[batch]`` of values given at the ``True`` positions of ``keep`` (row-major order)."""
    rows = keep.nonzero()[:, 0].to(token_values.device)
    return token_values.new_zeros(keep.shape[0]).index_add(0, rows, token_values)


def causal_sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed log-probability ``[batch]`` of each row's labelled tokens of a causal-LM batch, through
    the same output-layer decision as training; differentiable when gradients are enabled."""
    nll, keep = labelled_token_nll(model, batch)
    return -row_sums(nll, keep)


def seq2seq_labelled_logits(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An encoder-decoder's own forward with the decoder fed the shifted labels: (float32 logits at the
    labelled target positions ``[n, vocab]``, those labels ``[n]``, the ``[batch, target]`` mask of them)."""
    labels = batch["labels"]
    decoder_inputs = unwrap_model(model).prepare_decoder_input_ids_from_labels(labels=labels)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], decoder_input_ids=decoder_inputs)
    keep = labels != IGNORE
    return out.logits[keep].float(), labels[keep], keep


def seq2seq_sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed log-probability ``[batch]`` of each row's target tokens of an encoder-decoder batch."""
    logits, targets, keep = seq2seq_labelled_logits(model, batch)
    return -row_sums(F.cross_entropy(logits, targets, reduction="none"), keep)


def sequence_logps(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> torch.Tensor:
    """Summed log-probability ``[rows]`` of each row's labelled tokens (``labels != IGNORE``), float32
    or wider, differentiable when gradients are enabled; rows without a labelled token score 0.

    Causal LMs go through the same output-layer decision as training (medtune's fused head with
    logits only at answer tokens, chunked, where the parity probe allows); encoder-decoder models
    (Marian) through their own forward. Training (DPO, KTO) and evaluation share this one function.
    """
    return seq2seq_sequence_logps(model, batch) if seq2seq else causal_sequence_logps(model, batch)


def labelled_token_counts(batch: dict[str, torch.Tensor], seq2seq: bool) -> torch.Tensor:
    """Number of scored target tokens per row ``[rows]``, as :func:`sequence_logps` counts them (causal
    rows: labels from the second position on, since the first position predicts nothing)."""
    labels = batch["labels"] if seq2seq else batch["labels"][:, 1:]
    return (labels != IGNORE).sum(dim=1)


def causal_target_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the labelled tokens of a causal-LM batch (with gradient when
    enabled), and their count."""
    if not torch.is_grad_enabled():  # evaluation: no gradient to keep
        nll, keep = token_nll(model, batch)
        return nll.sum(), int(keep.sum())
    if check_output_layer(model, batch).fused:
        hidden = decoder_hidden_states(model, batch)
        targets, keep = _labelled(batch, hidden.device)
        return head_cross_entropy(model, hidden[:, :-1][keep], targets), int(keep.sum())
    logits, targets, keep = _own_labelled_logits(model, batch)
    return F.cross_entropy(logits, targets, reduction="sum"), int(keep.sum())
