"""Online RLHF: one reward-weighted policy-gradient step from one reviewer's score of one translation.

``rlhf_update(model, source, translation, feedback, optimizer)`` works the way medical-translation
projects already call it, on a MarianMT model (the source encoded, the translation as labels), on a
causal LM (medtune's translation prompt ``English: <source>\\nSpanish:``, labels on the translation
and the newline that ends it, exactly as SFT and DPO train it), or on a model medtune loaded from a
training output folder (:func:`medtune.models.loading.load_model`; its ``LoadedModel`` may be passed
as it is).

The rule (:func:`medtune.train.objectives.reward_weighted_loss`, which the batched objective shares):
``loss = -(feedback - baseline) * m`` with ``m`` the translation's mean per-token log-probability,
floored at ``-clip`` for a negative advantage so repeated poor scores cannot push it without bound,
plus ``kl_coef`` times a KL estimate to the starting model.

State kept per model object (a weak registry, so it goes with the model; :func:`rlhf_state` reads it,
:func:`reset_rlhf_state` forgets it):

* the running baseline: ``baseline`` (default 0.5) at a model's first call, then after every call
  ``baseline <- baseline_decay * baseline + (1 - baseline_decay) * feedback`` (decay 1 keeps it fixed).
  Starting at 0.5, a score above 0.5 raises the translation's probability and one below lowers it
  from the very first call;
* the KL reference (only when ``kl_coef > 0``): a PEFT model's reference is the same model with its
  adapter disabled (no copy; with a freshly attached adapter that is the starting model); a plain
  model's is a frozen deep copy made at its first call with ``kl_coef > 0``, which doubles the
  memory, so ``kl_coef=0`` (the default) skips it;
* the tokenizer loaded from the model's ``name_or_path`` when none is passed.

The model's own train/eval mode is used as it is (``from_pretrained`` gives eval mode: no dropout).
Full fine-tuning wants float32 weights: an Adam step of lr 5e-6 is mostly lost when rounded into bf16 ones.
"""

from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch

from medtune.data.parallel import Pair
from medtune.errors import MedtuneError
from medtune.models.adapters import unwrap_model
from medtune.models.loading import LoadedModel
from medtune.models.scoring import labelled_token_counts, sequence_logps
from medtune.train.batching import collate, encode_translation_pairs
from medtune.train.objectives import (
    DEFAULT_LOGP_FLOOR,
    batch_reference_logps,
    on_model_device,
    reward_weighted_loss,
)

DEFAULT_BASELINE = 0.5
DEFAULT_BASELINE_DECAY = 0.9
DEFAULT_MAX_LENGTH = 512


@dataclass
class RlhfState:
    """What ``rlhf_update`` remembers about one model between calls."""

    baseline: float
    updates: int = 0
    reference: Any = None  # the frozen copy of a plain model (kl_coef > 0)
    tokenizer: Any = None  # loaded from the model's name_or_path when none was passed


_states: weakref.WeakKeyDictionary[torch.nn.Module, RlhfState] = weakref.WeakKeyDictionary()


def rlhf_state(model) -> RlhfState | None:
    """The running baseline, update count and reference ``rlhf_update`` keeps for ``model`` (None before its first call)."""
    return _states.get(_model_of(model))


def reset_rlhf_state(model) -> None:
    """Forget ``model``'s running baseline and reference copy: the next call starts again."""
    _states.pop(_model_of(model), None)


def _model_of(model):
    """A medtune ``LoadedModel`` stands for its model."""
    return model.model if isinstance(model, LoadedModel) else model


def _check_unit(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not 0 <= value <= 1:
        raise MedtuneError(
            f"rlhf_update: {name}={value!r} must be a number in [0, 1] (a reviewer's score; rescale 0-N scores "
            "by dividing by N)."
        )
    return float(value)


def _check_options(kl_coef: float, clip: float, baseline_decay: float) -> None:
    if not (isinstance(kl_coef, Real) and math.isfinite(kl_coef) and kl_coef >= 0):
        raise MedtuneError(f"rlhf_update: kl_coef={kl_coef!r} must be 0 (no KL penalty) or a positive number.")
    if not (isinstance(clip, Real) and math.isfinite(clip) and clip > 0):
        raise MedtuneError(
            f"rlhf_update: clip={clip!r} must be a positive number of nats (the floor of a poorly scored "
            f"translation's mean per-token log-probability is -clip; default {DEFAULT_LOGP_FLOOR})."
        )
    if not (isinstance(baseline_decay, Real) and 0 <= baseline_decay <= 1):
        raise MedtuneError(
            f"rlhf_update: baseline_decay={baseline_decay!r} must be in [0, 1] (1 keeps the baseline fixed)."
        )


def _check_text(value, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MedtuneError(f"rlhf_update: {name} must be a non-empty string, got {value!r}.")
    return value


def _tokenizer_of(model, state: RlhfState):
    """The tokenizer saved with the model (``config._name_or_path``), loaded once per model."""
    if state.tokenizer is None:
        from transformers import AutoTokenizer

        from medtune.data.chat_template import ensure_pad_token

        path = getattr(unwrap_model(model).config, "_name_or_path", "") or getattr(model, "name_or_path", "")
        if not path:
            raise MedtuneError(
                "rlhf_update: tokenizer=None, and the model records no name_or_path to load its tokenizer from "
                "(it was not loaded with from_pretrained); pass tokenizer=."
            )
        try:
            state.tokenizer = AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as exc:
            raise MedtuneError(
                f"rlhf_update: tokenizer=None, and no tokenizer loads from the model's name_or_path {path!r} ({exc}); "
                "pass tokenizer=."
            ) from None
        ensure_pad_token(state.tokenizer)
    return state.tokenizer


def encode_feedback_batch(
    tokenizer, source: str, translation: str, seq2seq: bool, max_length: int, src_lang: str, tgt_lang: str
) -> dict[str, torch.Tensor]:
    """One translation as a batch of one row, encoded as medtune trains translation (labels on the translation).

    Raises:
        MedtuneError: no translation token fits in ``max_length``.
    """
    example = encode_translation_pairs(tokenizer, [Pair(source, translation)], seq2seq, max_length, src_lang, tgt_lang)[
        0
    ]
    if not example.n_target:
        raise MedtuneError(
            f"rlhf_update: the prompt of source {source[:60]!r} fills max_length={max_length} tokens, leaving no room "
            "for the translation; pass a larger max_length."
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return collate([example], pad, seq2seq)


def _reference_logp(model, state: RlhfState, batch: dict[str, torch.Tensor], seq2seq: bool) -> torch.Tensor:
    """The starting model's summed log-prob of the translation: adapter disabled, or the frozen copy."""
    if hasattr(model, "disable_adapter"):
        return batch_reference_logps(model, batch, seq2seq)
    if state.reference is None:
        state.reference = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():
        return sequence_logps(state.reference, batch, seq2seq)


def rlhf_update(
    model,
    source: str,
    translation: str,
    feedback: float,
    optimizer: torch.optim.Optimizer,
    tokenizer=None,
    *,
    baseline: float = DEFAULT_BASELINE,
    baseline_decay: float = DEFAULT_BASELINE_DECAY,
    kl_coef: float = 0.0,
    clip: float = DEFAULT_LOGP_FLOOR,
    max_grad_norm: float | None = 1.0,
    max_length: int = DEFAULT_MAX_LENGTH,
    src_lang: str = "en",
    tgt_lang: str = "es",
) -> float:
    """One reward-weighted policy-gradient step on ``translation`` of ``source``, scored ``feedback``.

    Args:
        model: a MarianMT / encoder-decoder model, a causal LM (either may be PEFT-wrapped), or a medtune
            ``LoadedModel``.
        source, translation: the sentence and the machine translation the reviewer scored.
        feedback: the score in [0, 1].
        optimizer: over the parameters to update; its gradients are zeroed before and after the step.
        tokenizer: the model's tokenizer; None loads it (once) from the model's ``name_or_path``.
        baseline: the running baseline's value at this model's first call (see the module docstring).
        baseline_decay: how much of the running baseline each call keeps (1: fixed).
        kl_coef: weight of the KL penalty to the starting model (0: none, no reference kept).
        clip: a negative-advantage update stops pushing once the translation's mean per-token log-prob
            is below ``-clip`` nats.
        max_grad_norm: the gradient is clipped to this norm before the step (None: not clipped).
        max_length: longest sequence in tokens (a longer translation is cut at the end).
        src_lang, tgt_lang: the causal prompt's languages.
    Returns:
        The loss of this step (before it), as a float.
    Raises:
        MedtuneError: ``feedback`` or ``baseline`` not a number in [0, 1] (NaN included), empty texts,
            negative ``kl_coef``, a non-positive ``clip``, no tokenizer to be found.
    """
    feedback = _check_unit(feedback, "feedback")
    baseline = _check_unit(baseline, "baseline")
    _check_options(kl_coef, clip, baseline_decay)
    source, translation = _check_text(source, "source"), _check_text(translation, "translation")
    if tokenizer is None and isinstance(model, LoadedModel):
        tokenizer = model.tokenizer
    model = _model_of(model)
    state = _states.get(model)
    if state is None:
        state = _states.setdefault(model, RlhfState(baseline))
    tokenizer = tokenizer if tokenizer is not None else _tokenizer_of(model, state)
    seq2seq = bool(getattr(unwrap_model(model).config, "is_encoder_decoder", False))
    batch = on_model_device(
        encode_feedback_batch(tokenizer, source, translation, seq2seq, max_length, src_lang, tgt_lang), model
    )
    ref = _reference_logp(model, state, batch, seq2seq) if kl_coef else None  # first: no policy graph alive
    optimizer.zero_grad(set_to_none=True)
    policy = sequence_logps(model, batch, seq2seq)
    tokens = labelled_token_counts(batch, seq2seq).clamp(min=1).to(policy)
    advantage = torch.tensor([feedback - state.baseline], dtype=policy.dtype, device=policy.device)
    losses, _ = reward_weighted_loss(policy, tokens, advantage, None if ref is None else ref.to(policy), kl_coef, clip)
    loss = losses.sum()
    loss.backward()
    if max_grad_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    state.baseline = baseline_decay * state.baseline + (1 - baseline_decay) * feedback
    state.updates += 1
    return float(loss.detach())
