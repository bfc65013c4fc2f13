"""Training objectives as parts the loop calls: SFT (target-token cross-entropy), DPO, KTO and reward-weighted.

An objective says how its items become one padded batch (``collate``), how many units normalise an
optimizer step's gradient (``units``: target tokens for SFT, pairs for DPO, examples for KTO, so
that k accumulated micro-batches give the gradient of one batch k times larger), and turns a batch
into a summed loss plus figures to log (``loss``). The loss math lives in pure functions
(:func:`dpo_loss`, :func:`kto_loss`, :func:`reward_weighted_loss`: tensors in, tensors out), apart from
the model work.

The reference model costs no second copy: with LoRA its log-probs come from the same model with the
adapter disabled (so the adapter must be a fresh one on the SFT model), under ``no_grad`` with
dropout off; with full fine-tuning they are precomputed once (:func:`reference_logps`) and carried
in the batch as ``ref_logps``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple, Protocol

import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE, Example
from medtune.errors import MedtuneError
from medtune.train.batching import collate
from medtune.train.distributed import sum_over_processes, world
from medtune.train.fsdp import is_sharded
from medtune.train.loss import labelled_token_counts, sequence_logps, target_loss

# A step's figures as (sum, count) per name: micro-batches add up, the loop divides at the end.
Metrics = dict[str, tuple[float, float]]


@dataclass(frozen=True)
class PairExample:
    """A preference pair, encoded: the same prompt with the chosen and with the rejected answer.

    ``ref_logps`` holds the reference model's (chosen, rejected) log-probs when they were
    precomputed (full fine-tuning; see :func:`reference_logps`).
    """

    chosen: Example
    rejected: Example
    ref_logps: tuple[float, float] | None = None

    @property
    def length(self) -> int:
        return max(self.chosen.length, self.rejected.length)

    @property
    def n_target(self) -> int:
        return self.chosen.n_target + self.rejected.n_target


class ScoredExample(NamedTuple):
    """One example for the reward-weighted objective: an encoded prompt + answer, its advantage (score
    minus baseline) and, for full fine-tuning, the reference model's precomputed summed log-prob."""

    example: Example
    advantage: float
    ref_logp: float | None = None

    @property
    def length(self) -> int:
        return self.example.length

    @property
    def n_target(self) -> int:
        return self.example.n_target


class KTOExample(NamedTuple):
    """One unpaired example for KTO: an encoded prompt + answer and whether the answer is desirable."""

    example: Example
    desirable: bool

    @property
    def length(self) -> int:
        return self.example.length

    @property
    def n_target(self) -> int:
        return self.example.n_target


class Objective(Protocol):
    """What the training loop needs from an objective.

    An objective whose loss depends on a figure of the whole optimizer step (KTO's reference point)
    also has ``step_context(model, step_items, mine, pad_id, seq2seq, batch_size, autocast_dtype)``:
    the loop calls it once per step with the step's global items and this process's share of them
    (a range), and passes what it returns to every ``collate`` of the step as keyword arguments.
    """

    name: str
    needs_reference: bool  # reads reference log-probs (adapter disabled, or precomputed ``ref_logps``)
    min_batch_size: int  # fewest items a micro-batch may hold

    def units(self, items: Sequence) -> int:
        """The normaliser of a step's summed loss: the loss reported and optimised is per unit."""
        ...

    def collate(self, items: Sequence, pad_id: int, seq2seq: bool) -> dict[str, torch.Tensor]:
        """One padded batch of tensors for :meth:`loss`."""
        ...

    def loss(self, model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, Metrics]:
        """(the loss summed over the batch's units, figures to log as (sum, count) pairs)."""
        ...


# --- pure losses ---------------------------------------------------------------------------------


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The sigmoid DPO loss of each pair, from summed sequence log-probs ``[pairs]``.

    Returns ``(losses, chosen_rewards, rejected_rewards)``: ``-log σ(β((πc - rc) - (πr - rr)))`` per
    pair, and the implicit rewards ``β(π - r)`` (detached).
    """
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    losses = -F.logsigmoid(beta * (chosen_ratio - rejected_ratio))
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def kto_loss(
    policy: torch.Tensor,
    ref: torch.Tensor,
    desirable: torch.Tensor,
    policy_mismatched: torch.Tensor,
    ref_mismatched: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The KTO loss of each example (TRL's formulation), from summed sequence log-probs ``[examples]``.

    The reference point z is the mean log-ratio ``policy - ref`` on mismatched prompt/answer pairs,
    detached and clamped at 0. Desirable examples lose ``w_d (1 - σ(β(r - z)))``, undesirable ones
    ``w_u (1 - σ(β(z - r)))``, where r is the example's log-ratio. Returns ``(losses, z)``.
    """
    z = (policy_mismatched - ref_mismatched).mean().detach().clamp(min=0)
    return kto_loss_at(policy, ref, desirable, z, beta, desirable_weight, undesirable_weight), z


def kto_loss_at(
    policy: torch.Tensor,
    ref: torch.Tensor,
    desirable: torch.Tensor,
    z: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> torch.Tensor:
    """The KTO loss of each example ``[examples]`` for a given (detached, clamped) reference point ``z``:
    ``w_d (1 - σ(β(r - z)))`` for desirable examples, ``w_u (1 - σ(β(z - r)))`` for the others."""
    ratio = policy - ref
    good = desirable_weight * (1 - torch.sigmoid(beta * (ratio - z)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (z - ratio)))
    return torch.where(desirable, good, bad)


DEFAULT_LOGP_FLOOR = 10.0  # nats: a mean per-token probability of e^-10 (about 4.5e-5)


def reward_weighted_loss(
    policy: torch.Tensor,
    tokens: torch.Tensor,
    advantages: torch.Tensor,
    ref: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    clip: float = DEFAULT_LOGP_FLOOR,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reward-weighted policy-gradient loss of each answer (the rule of ``rlhf_update``), ``[answers]``.

    With ``m = policy / tokens`` the answer's mean per-token log-probability (a mean, so that a long
    sentence takes no bigger step than a short one and one learning rate suits every length) and
    ``A`` its advantage (score minus baseline): the loss is ``-A * m``. A negative advantage pushes
    ``m`` down without end, so there ``m`` is floored at ``-clip`` (``clamp``: no gradient below it):
    the loss stays above ``-|A| * clip`` and a translation already that unlikely is pushed no further.
    With ``kl_coef`` the loss adds ``kl_coef * (e^d - d - 1)``, ``d = (ref - policy) / tokens``: the
    k3 estimator of KL(policy || reference) on the answer's tokens (Schulman 2020), >= 0, zero with a
    zero gradient while the policy equals the reference, pulling back towards it from either side.

    Args:
        policy, ref: summed log-probs of each answer under the policy and the reference ``[answers]``.
        tokens: scored tokens of each answer ``[answers]`` (at least 1).
        advantages: score minus baseline of each answer ``[answers]``.
    Returns:
        ``(losses, kl)``: the losses and the (detached) KL estimates, zero without a reference.
    """
    mean = policy / tokens
    floored = torch.where(advantages < 0, mean.clamp(min=-clip), mean)
    losses = -advantages * floored
    if ref is None or not kl_coef:
        return losses, torch.zeros_like(losses).detach()
    d = (ref - policy) / tokens
    kl = torch.exp(d) - d - 1
    return losses + kl_coef * kl, kl.detach()


# --- batches -------------------------------------------------------------------------------------


def collate_pairs(pairs: Sequence[PairExample], pad_id: int, seq2seq: bool) -> dict[str, torch.Tensor]:
    """Chosen rows first, then rejected rows, in one padded batch, so one forward pass serves both.

    Seq2seq labels are padded separately (as :func:`medtune.train.batching.collate` does). When the
    pairs carry precomputed reference log-probs, the batch holds them as ``ref_logps`` ``[2 x pairs]``
    in the same row order.

    Raises:
        MedtuneError: some pairs carry reference log-probs and others do not.
    """
    batch = collate([p.chosen for p in pairs] + [p.rejected for p in pairs], pad_id, seq2seq)
    with_ref = [p.ref_logps is not None for p in pairs]
    if any(with_ref):
        if not all(with_ref):
            raise MedtuneError(
                "Some preference pairs carry precomputed reference log-probs and others do not; compute them "
                "for every pair with medtune.train.objectives.reference_logps."
            )
        refs = [p.ref_logps[0] for p in pairs] + [p.ref_logps[1] for p in pairs]
        # float32 holds the float32 log-probs they were computed as exactly, and every device has it
        batch["ref_logps"] = torch.tensor(refs, dtype=torch.float32)
    return batch


def _prompt_and_answer(example: Example, seq2seq: bool) -> tuple[Example, Example]:
    """(the prompt part, the answer part) of an encoded example: causal answers start at the first label."""
    if seq2seq:
        return Example(example.input_ids, []), Example([], example.labels)
    start = next((i for i, label in enumerate(example.labels) if label != IGNORE), len(example.labels))
    prompt = Example(example.input_ids[:start], example.labels[:start])
    return prompt, Example(example.input_ids[start:], example.labels[start:])


def mismatched_examples(examples: Sequence[Example], seq2seq: bool) -> list[Example]:
    """Each example's prompt with the previous example's answer (answers rotated by one, as TRL's KTO
    does), the pairs whose log-ratios estimate KTO's reference point z."""
    parts = [_prompt_and_answer(e, seq2seq) for e in examples]
    out = []
    for i, (prompt, _) in enumerate(parts):
        answer = parts[i - 1][1]
        out.append(Example(prompt.input_ids + answer.input_ids, prompt.labels + answer.labels))
    return out


def _rows(batch: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {key: value[rows] for key, value in batch.items()}


# --- the reference model -------------------------------------------------------------------------


@contextlib.contextmanager
def eval_mode(model) -> Iterator[None]:
    """Every module in eval mode (dropout off) for the block; each module's own mode is restored after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


# Rates that some models (Marian, BART) keep as plain float attributes and pass to functional dropout
# or LayerDrop in their forward, so setting nn.Dropout modules' p alone would leave them on.
DROPOUT_RATE_ATTRIBUTES = ("dropout", "attention_dropout", "activation_dropout", "layerdrop")


def disable_dropout(model) -> None:
    """Set every dropout probability of ``model`` to 0 (as TRL does by default for preference training),
    so that at the first step the policy equals the reference exactly: ``nn.Dropout`` modules and the
    float rates of :data:`DROPOUT_RATE_ATTRIBUTES` on any module."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for name in DROPOUT_RATE_ATTRIBUTES:
            if isinstance(getattr(module, name, None), float):
                setattr(module, name, 0.0)


def batch_reference_logps(model, batch: dict[str, torch.Tensor], seq2seq: bool) -> torch.Tensor:
    """The reference model's summed log-probs of a batch's rows: ``batch["ref_logps"]`` when precomputed,
    else the same model with its (fresh) LoRA adapter disabled, under ``no_grad`` with dropout off.

    Raises:
        MedtuneError: no precomputed values and no adapter to disable (full fine-tuning).
    """
    if "ref_logps" in batch:
        return batch["ref_logps"]
    if not hasattr(model, "disable_adapter"):
        raise MedtuneError(
            "This objective compares the model with a reference model, but the model has no LoRA adapter to "
            "disable and the batch carries no precomputed reference log-probs. Train with train.method=lora, or "
            "precompute them with medtune.train.objectives.reference_logps before full fine-tuning."
        )
    with torch.no_grad(), eval_mode(model), model.disable_adapter():
        return sequence_logps(model, batch, seq2seq)


def on_model_device(batch: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """The batch on the device of the model's parameters."""
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()} if device.type != "cpu" else batch


def precision_context(model, autocast_dtype: torch.dtype | None):
    """The autocast context of a float32-master-weights run, else a no-op."""
    if autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(next(model.parameters()).device.type, dtype=autocast_dtype)


def reference_logps(
    model,
    items: Sequence[PairExample] | Sequence[Example],
    pad_id: int,
    seq2seq: bool,
    batch_size: int = 8,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Summed log-probs of ``model`` as it is now (no gradient, dropout off), to serve as the reference.

    Returns ``[pairs, 2]`` (chosen, rejected) for pairs, ``[examples]`` for examples, in the order
    given. Pass them into the pairs with :func:`with_reference_logps`.
    """
    pairs = bool(items) and isinstance(items[0], PairExample)
    examples = [p.chosen for p in items] + [p.rejected for p in items] if pairs else list(items)
    order = sorted(range(len(examples)), key=lambda i: examples[i].length)  # similar lengths: little padding
    out = torch.empty(len(examples), dtype=torch.float64)
    with torch.no_grad(), eval_mode(model):
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = on_model_device(collate([examples[i] for i in chunk], pad_id, seq2seq), model)
            with precision_context(model, autocast_dtype):
                out[chunk] = sequence_logps(model, batch, seq2seq).cpu().double()  # MPS has no float64
    return torch.stack(out.chunk(2), dim=1) if pairs else out


def with_reference_logps(pairs: Sequence[PairExample], logps: torch.Tensor) -> list[PairExample]:
    """The pairs carrying the ``[pairs, 2]`` reference log-probs of :func:`reference_logps`."""
    return [replace(pair, ref_logps=(float(c), float(r))) for pair, (c, r) in zip(pairs, logps.tolist(), strict=True)]


# --- the objectives ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SFTObjective:
    """Supervised fine-tuning: summed cross-entropy of the target tokens, per target token."""

    name: ClassVar[str] = "sft"
    needs_reference: ClassVar[bool] = False
    min_batch_size: ClassVar[int] = 1

    def units(self, items: Sequence[Example]) -> int:
        return sum(e.n_target for e in items)

    def collate(self, items: Sequence[Example], pad_id: int, seq2seq: bool) -> dict[str, torch.Tensor]:
        return collate(list(items), pad_id, seq2seq)

    def loss(self, model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, Metrics]:
        loss_sum, _ = target_loss(model, batch, seq2seq)
        return loss_sum, {}


@dataclass(frozen=True)
class DPOObjective:
    """Direct preference optimisation (sigmoid loss), per pair.

    ``sft_weight`` adds ``sft_weight x`` the mean per-token NLL of each chosen answer, against the
    known drift of the chosen log-probs downwards during DPO (0 = plain DPO).
    """

    beta: float = 0.1
    sft_weight: float = 0.0
    name: ClassVar[str] = "dpo"
    needs_reference: ClassVar[bool] = True
    min_batch_size: ClassVar[int] = 1

    def units(self, items: Sequence[PairExample]) -> int:
        return len(items)

    def collate(self, items: Sequence[PairExample], pad_id: int, seq2seq: bool) -> dict[str, torch.Tensor]:
        return collate_pairs(items, pad_id, seq2seq)

    def loss(self, model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, Metrics]:
        ref = batch_reference_logps(model, batch, seq2seq)  # first: no policy graph is alive during it
        policy = sequence_logps(model, batch, seq2seq)
        ref = ref.to(policy)
        n = policy.shape[0] // 2
        losses, chosen, rejected = dpo_loss(policy[:n], policy[n:], ref[:n], ref[n:], self.beta)
        total = losses.sum()
        if self.sft_weight:
            tokens = labelled_token_counts(batch, seq2seq)[:n].clamp(min=1).to(policy.device)
            total = total + self.sft_weight * (-policy[:n] / tokens).sum()
        margin = chosen - rejected
        return total, {
            "reward_margin": (float(margin.sum()), n),
            "reward_accuracy": (float((margin > 0).sum()), n),
            "chosen_reward": (float(chosen.sum()), n),
            "rejected_reward": (float(rejected.sum()), n),
        }


@dataclass(frozen=True)
class KTOObjective:
    """Kahneman-Tversky optimisation on unpaired desirable / undesirable examples, per example.

    The reference point z is the mean log-ratio of every prompt with the previous example's answer
    (built when the batch is, because batches are shuffled), under ``no_grad``. In training the loop
    estimates it once per optimizer step over the step's whole global batch (:meth:`step_context`,
    summed across processes), so accumulated micro-batches and N processes x batch B give exactly the
    z, loss and gradient of one batch N·B; a batch collated alone (evaluation) estimates its own, so
    a micro-batch needs at least two examples. The reference comes from the disabled adapter: z's
    mismatched pairs change with the batching, so they cannot be precomputed for full fine-tuning.
    """

    beta: float = 0.1
    desirable_weight: float = 1.0
    undesirable_weight: float = 1.0
    name: ClassVar[str] = "kto"
    needs_reference: ClassVar[bool] = True
    min_batch_size: ClassVar[int] = 2

    def units(self, items: Sequence[KTOExample]) -> int:
        return len(items)

    def step_context(
        self,
        model,
        step_items: Sequence[KTOExample],
        mine: range,
        pad_id: int,
        seq2seq: bool,
        batch_size: int,
        autocast_dtype: torch.dtype | None = None,
    ) -> dict[str, float]:
        """The reference point z of a whole optimizer step, for :meth:`collate`: ``{"reference_point": z}``.

        The answers rotate by one over the step's global items; this process scores the mismatched rows
        of its own share ``mine`` (micro-batches of ``batch_size``), and the sums of the log-ratios and
        their counts are added up across processes, so every process gets the z of the global batch.
        """
        every_row = mismatched_examples([item.example for item in step_items], seq2seq)
        rows = every_row[mine.start : mine.stop]
        total = torch.zeros(2, dtype=torch.float64)  # (summed log-ratio, rows)
        chunks = range(0, len(rows), batch_size)
        with torch.no_grad():
            for start in chunks:
                batch = on_model_device(collate(rows[start : start + batch_size], pad_id, seq2seq), model)
                with precision_context(model, autocast_dtype):
                    ref = batch_reference_logps(model, batch, seq2seq)
                    policy = sequence_logps(model, batch, seq2seq)
                total += torch.tensor([float((policy - ref.to(policy)).sum()), len(ref)], dtype=torch.float64)
            if is_sharded(model):  # FSDP2 gathers weights in every forward: score as many batches as the busiest rank
                busiest = math.ceil(math.ceil(len(every_row) / world()[1]) / batch_size)
                for _ in range(busiest - len(chunks)):
                    batch = on_model_device(collate(every_row[:1], pad_id, seq2seq), model)
                    with precision_context(model, autocast_dtype):
                        batch_reference_logps(model, batch, seq2seq)
                        sequence_logps(model, batch, seq2seq)
        total = sum_over_processes(total)
        return {"reference_point": max(0.0, float(total[0] / total[1]))}

    def collate(
        self, items: Sequence[KTOExample], pad_id: int, seq2seq: bool, reference_point: float | None = None
    ) -> dict[str, torch.Tensor]:
        """Examples first, then (without a ``reference_point`` from :meth:`step_context`) their mismatched
        rows to estimate this batch's own z; ``desirable`` ``[examples]`` says which are good.

        Raises:
            MedtuneError: fewer than two examples and no reference point (z needs another example's answer).
        """
        desirable = torch.tensor([bool(item.desirable) for item in items])
        if reference_point is not None:
            batch = collate([item.example for item in items], pad_id, seq2seq)
            batch["desirable"] = desirable
            batch["reference_point"] = torch.tensor(reference_point, dtype=torch.float64)
            return batch
        if len(items) < 2:
            raise MedtuneError(
                f"KTO needs at least 2 examples per micro-batch to estimate its reference point (this one holds "
                f"{len(items)}); set train.batch_size to 2 or more."
            )
        examples = [item.example for item in items]
        batch = collate(examples + mismatched_examples(examples, seq2seq), pad_id, seq2seq)
        batch["desirable"] = desirable
        return batch

    def loss(self, model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, Metrics]:
        desirable = batch["desirable"]
        rows = {k: v for k, v in batch.items() if k not in ("desirable", "reference_point")}
        if not hasattr(model, "disable_adapter"):
            raise MedtuneError(
                "KTO takes its reference from the model with its LoRA adapter disabled, and this model has no "
                "adapter (its mismatched pairs change with the batching, so their reference log-probs cannot be "
                "precomputed for full fine-tuning). Train KTO with train.method=lora."
            )
        n = desirable.shape[0]
        ref = batch_reference_logps(model, rows, seq2seq)
        if "reference_point" in batch:  # the step's z, from step_context: the batch holds no mismatched rows
            policy = sequence_logps(model, rows, seq2seq)
            ref, desirable = ref.to(policy), desirable.to(policy.device)
            z = batch["reference_point"].to(policy)
            losses = kto_loss_at(policy, ref, desirable, z, self.beta, self.desirable_weight, self.undesirable_weight)
        else:
            with torch.no_grad():  # z is detached: the mismatched rows need no graph
                policy_mismatched = sequence_logps(model, _rows(rows, slice(n, None)), seq2seq)
            policy = sequence_logps(model, _rows(rows, slice(0, n)), seq2seq)
            ref, desirable = ref.to(policy), desirable.to(policy.device)
            losses, z = kto_loss(
                policy,
                ref[:n],
                desirable,
                policy_mismatched.to(policy),
                ref[n:],
                self.beta,
                self.desirable_weight,
                self.undesirable_weight,
            )
        rewards = self.beta * (policy.detach() - ref[:n])
        good = int(desirable.sum())
        return losses.sum(), {
            "chosen_reward": (float(rewards[desirable].sum()), good),
            "rejected_reward": (float(rewards[~desirable].sum()), n - good),
            "kl": (float(z), 1),
        }


@dataclass(frozen=True)
class RewardWeightedObjective:
    """The online ``rlhf_update`` rule, batched: :func:`reward_weighted_loss` of each scored answer, per example.

    A batch's loss is the sum of its examples' losses, each exactly what ``rlhf_update`` computes for
    that example alone (with the same advantage). With ``kl_coef > 0`` the reference log-probs come from
    the disabled LoRA adapter or are precomputed (``ScoredExample.ref_logp``), as for DPO.
    """

    kl_coef: float = 0.0
    clip: float = DEFAULT_LOGP_FLOOR
    name: ClassVar[str] = "reward-weighted"
    min_batch_size: ClassVar[int] = 1

    @property
    def needs_reference(self) -> bool:
        return bool(self.kl_coef)

    def units(self, items: Sequence[ScoredExample]) -> int:
        return len(items)

    def collate(self, items: Sequence[ScoredExample], pad_id: int, seq2seq: bool) -> dict[str, torch.Tensor]:
        """The examples padded, ``advantage`` ``[examples]`` and, when precomputed, ``ref_logps``.

        Raises:
            MedtuneError: some examples carry a reference log-prob and others do not.
        """
        batch = collate([item.example for item in items], pad_id, seq2seq)
        batch["advantage"] = torch.tensor([float(item.advantage) for item in items], dtype=torch.float32)
        with_ref = [item.ref_logp is not None for item in items]
        if any(with_ref):
            if not all(with_ref):
                raise MedtuneError(
                    "Some scored examples carry precomputed reference log-probs and others do not; compute them for "
                    "every example with medtune.train.objectives.reference_logps."
                )
            batch["ref_logps"] = torch.tensor([item.ref_logp for item in items], dtype=torch.float32)
        return batch

    def loss(self, model, batch: dict[str, torch.Tensor], seq2seq: bool) -> tuple[torch.Tensor, Metrics]:
        rows = {k: v for k, v in batch.items() if k != "advantage"}
        ref = batch_reference_logps(model, rows, seq2seq) if self.kl_coef else None  # first: no policy graph alive
        policy = sequence_logps(model, rows, seq2seq)
        tokens = labelled_token_counts(rows, seq2seq).clamp(min=1).to(policy)
        advantages = batch["advantage"].to(policy)
        losses, kl = reward_weighted_loss(
            policy, tokens, advantages, None if ref is None else ref.to(policy), self.kl_coef, self.clip
        )
        n = policy.shape[0]
        return losses.sum(), {
            "advantage": (float(advantages.sum()), n),
            "mean_token_logp": (float((policy.detach() / tokens).sum()), n),
            "kl": (float(kl.sum()), n),
        }
