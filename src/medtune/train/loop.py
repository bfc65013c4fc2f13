"""One resumable training loop for every method and objective: seeded, unit-normalised, checkpointed.

The objective (:mod:`medtune.train.objectives`: SFT, DPO, KTO) collates the items and gives the
loss. Gradient accumulation divides each micro-batch's summed loss by the units of the whole
optimizer step (target tokens for SFT, pairs for DPO, examples for KTO), so accumulating k
micro-batches gives the same loss and gradient as one batch k times larger (KTO's reference point
is estimated once per step over the whole global batch, so KTO too). Under several processes
(``accelerate launch``, ``torchrun``) every rank takes its contiguous slice of the same global
batches and the gradients are summed across ranks (:mod:`medtune.train.distributed`), so N processes
with batch B train exactly as 1 process with batch N·B; only the main process writes checkpoints and
progress. Under an FSDP launch the model is sharded with FSDP2 for the loop (:mod:`medtune.train.fsdp`)
with the same sums, and unsharded again when it returns. Ctrl-C saves a checkpoint of the last completed step; ``resume=True`` restores the
weights, optimizer, schedule, data position and random state (each rank its own) and carries on.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from medtune.errors import MedtuneError
from medtune.sharding import barrier
from medtune.train.batching import plan_batches
from medtune.train.distributed import gather_all, rank_slice, sum_gradients, world
from medtune.train.fsdp import (
    fsdp_requested,
    full,
    full_optimizer_state,
    like,
    shard_model,
    shard_optimizer_state,
    unshard_for_good,
)
from medtune.train.objectives import Metrics, Objective, SFTObjective, on_model_device, precision_context

CHECKPOINT = "last"


class TrainingInterrupted(MedtuneError):
    """Raised after Ctrl-C once the checkpoint is safely written."""


@dataclass
class LoopConfig:
    batch_size: int
    grad_accum: int
    lr: float
    seed: int
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = 50
    save_every: int = 50
    autocast_dtype: torch.dtype | None = None  # forward and loss under torch.autocast (float32 master weights)
    stop_after: int | None = None  # testing aid: behave as if interrupted after this step


@dataclass
class TrainResult:
    steps: int
    train_loss: float  # mean loss per unit (SFT: target token) over the last logged window
    dev_loss: float | None
    dev_history: list[tuple[int, float]] = field(default_factory=list)
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    # the objective's figures per optimizer step (DPO: reward_margin, reward_accuracy, chosen_reward,
    # rejected_reward), with the same figures on the dev items under "dev_" names at evaluation steps
    metric_history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    target_tokens: int = 0
    seconds: float = 0.0
    input_tokens: int = 0  # real (non-padding) positions processed
    padding_tokens: int = 0  # padding positions processed

    @property
    def padding_waste(self) -> float:
        """Share of processed positions that were padding."""
        total = self.input_tokens + self.padding_tokens
        return self.padding_tokens / total if total else 0.0

    @property
    def target_tokens_per_s(self) -> float:
        return self.target_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {
            "steps": self.steps,
            "train_loss": self.train_loss,
            "dev_loss": self.dev_loss,
            "dev_history": self.dev_history,
            "loss_history": self.loss_history,
            "target_tokens": self.target_tokens,
            "train_seconds": round(self.seconds, 2),
            "target_tokens_per_s": round(self.target_tokens_per_s, 2),
            "input_tokens": self.input_tokens,
            "padding_tokens": self.padding_tokens,
            "padding_waste": round(self.padding_waste, 4),
            **({"metric_history": self.metric_history} if self.metric_history else {}),
        }


def rng_state() -> dict:
    """Every random generator training draws from: Python, numpy, torch CPU and (when present) CUDA."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved (CUDA state only when this machine has the same GPUs)."""
    random.setstate(state["python"])
    if "numpy" in state:  # checkpoints written before numpy state was kept
        np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def micro_batches(items: list, batch_size: int, min_size: int = 1) -> list[list]:
    """``items`` in slices of ``batch_size``; a last slice under ``min_size`` joins the one before it."""
    slices = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    if len(slices) > 1 and len(slices[-1]) < min_size:
        slices[-2:] = [slices[-2] + slices[-1]]
    return slices


def _add_metrics(total: dict[str, list[float]], metrics: Metrics) -> None:
    for name, (value, count) in metrics.items():
        acc = total.setdefault(name, [0.0, 0.0])
        acc[0] += value
        acc[1] += count


def _means(total: dict[str, list[float]]) -> dict[str, float]:
    return {name: value / count for name, (value, count) in total.items() if count}


def dev_metrics(
    model,
    items: list,
    pad_id: int,
    seq2seq: bool,
    batch_size: int,
    autocast_dtype=None,
    objective: Objective = SFTObjective(),
) -> tuple[float | None, dict[str, float]]:
    """(the objective's mean loss per unit on held-out items, its figures averaged over them);
    ``(None, {})`` when there are none."""
    if not items:
        return None, {}
    was_training = model.training
    model.eval()
    total, count, figures = 0.0, 0, {}
    order = sorted(range(len(items)), key=lambda i: items[i].length)
    with torch.no_grad():
        for chunk in micro_batches(order, batch_size, objective.min_batch_size):
            micro = [items[i] for i in chunk]
            batch = objective.collate(micro, pad_id, seq2seq)
            with precision_context(model, autocast_dtype):
                loss, metrics = objective.loss(model, on_model_device(batch, model), seq2seq)
            total, count = total + float(loss), count + objective.units(micro)
            _add_metrics(figures, metrics)
    model.train(was_training)
    return total / max(count, 1), _means(figures)


def _check_micro_batches(
    objective: Objective, cfg: LoopConfig, effective: int, n_ranks: int, n_train: int, n_dev: int
) -> None:
    """Refuse, before any work, a batching that would leave a micro-batch smaller than the objective needs.

    ``effective`` is one optimizer step's global batch; the last, shorter step is shared by ``n_ranks``.
    """
    least = objective.min_batch_size
    leftover = n_train % effective
    smallest_share = leftover // n_ranks or min(leftover, 1)  # of the last step, on a rank that gets any
    if least > 1 and (cfg.batch_size < least or 0 < smallest_share < least or 0 < n_dev < least):
        raise MedtuneError(
            f"The {objective.name} objective needs at least {least} examples in every micro-batch, but "
            f"train.batch_size is {cfg.batch_size}, {n_train} training examples in steps of {effective} "
            f"(train.batch_size x train.grad_accum x processes) leave {leftover or effective} for the last step, and there are "
            f"{n_dev} dev examples. Set train.batch_size to {least} or more, choose a train.grad_accum that does "
            f"not leave fewer than {least} examples over, and keep at least {least} dev examples (or none)."
        )


def _real_tokens(batch: dict[str, torch.Tensor], micro: list) -> int:
    """Non-padding input positions of a batch (packed blocks carry no attention mask: their lengths)."""
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return sum(len(e.input_ids) for e in micro)


def train_loop(
    model,
    train: list,
    dev: list,
    cfg: LoopConfig,
    pad_id: int,
    seq2seq: bool,
    checkpoint_dir: Path,
    resume: bool = False,
    log=print,
    objective: Objective = SFTObjective(),
) -> TrainResult:
    """Train the parameters of ``model`` that require gradients.

    Args:
        model: a (PEFT-wrapped) transformers model.
        train, dev: encoded items of the objective: ``Example``s for SFT, ``PairExample``s for DPO,
            ``KTOExample``s for KTO.
        cfg: schedule and batching.
        pad_id: padding token id.
        seq2seq: encoder-decoder model (labels are a separate sequence).
        checkpoint_dir: where resumable checkpoints go (``<dir>/last``).
        resume: continue from ``<dir>/last`` if it exists.
        objective: what is optimised (default: SFT's target-token cross-entropy).
    Returns:
        Loss, throughput and the objective's figures.
    Raises:
        MedtuneError: no training items, or micro-batches too small for the objective.
        TrainingInterrupted: after Ctrl-C, once a checkpoint is saved.
    """
    if not train:
        raise MedtuneError("No training examples left; check data.train and validation output.")
    rank, n_ranks = world()
    main = rank == 0
    effective = cfg.batch_size * cfg.grad_accum * n_ranks  # one optimizer step's global batch
    _check_micro_batches(objective, cfg, effective, n_ranks, len(train), len(dev))
    sharded = n_ranks > 1 and fsdp_requested()
    if sharded:
        shard_model(model)  # before the optimizer, which must hold the sharded parameters
    # per-rank seeds (dropout masks differ across ranks); rank 0 draws what a single process draws
    torch.manual_seed(cfg.seed + rank)  # also seeds every CUDA device
    random.seed(cfg.seed + rank)
    np.random.seed(cfg.seed + rank)
    steps_per_epoch = math.ceil(len(train) / effective)
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    warmup = int(cfg.warmup_ratio * total_steps)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    result = TrainResult(steps=0, train_loss=float("nan"), dev_loss=None)
    start_step, window_loss, window_units = 0, 0.0, 0
    ckpt = checkpoint_dir / CHECKPOINT
    if resume:
        barrier()  # the main process may still be writing the checkpoint this run resumes from
    if resume and (ckpt / "state.pt").is_file():
        start_step, window_loss, window_units = _load_checkpoint(
            ckpt, model, optimizer, scheduler, result, rank, n_ranks, sharded
        )
        if main:
            log(f"Resuming from step {start_step} of {total_steps} ({ckpt})")
    elif resume and main:
        log(f"No checkpoint in {checkpoint_dir}; starting from step 0")

    model.train()
    epoch_plans: dict[int, list[list[int]]] = {}
    # a figure of the whole step that every micro-batch's loss needs (KTO's reference point)
    step_context = getattr(objective, "step_context", None)

    def batch_for(step: int) -> list:
        epoch, index = divmod(step, steps_per_epoch)
        if epoch not in epoch_plans:
            epoch_plans.clear()
            epoch_plans[epoch] = plan_batches(train, effective, cfg.seed, epoch)
        return [train[i] for i in epoch_plans[epoch][index]]

    started = time.perf_counter()
    earlier_seconds = result.seconds  # time spent before a resume
    run_tokens = 0
    bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True, disable=not main)
    step = start_step
    saved_step = None  # the step of the last periodic checkpoint
    try:
        for step in range(start_step, total_steps):
            examples = batch_for(step)
            # every rank holds the same global batch, so its units need no communication
            n_units = objective.units(examples)
            n_tokens = sum(e.n_target for e in examples)
            optimizer.zero_grad(set_to_none=True)
            step_loss, step_metrics, real_tokens, padding_tokens = 0.0, {}, 0, 0
            share = rank_slice(range(len(examples)), rank, n_ranks)
            context = {}
            if step_context is not None:
                context = step_context(model, examples, share, pad_id, seq2seq, cfg.batch_size, cfg.autocast_dtype)
            mine = examples[share.start : share.stop]
            for micro in micro_batches(mine, cfg.batch_size, objective.min_batch_size):
                batch = objective.collate(micro, pad_id, seq2seq, **context)
                real = _real_tokens(batch, micro)
                real_tokens += real
                padding_tokens += batch["input_ids"].numel() - real
                with precision_context(model, cfg.autocast_dtype):
                    loss_sum, metrics = objective.loss(model, on_model_device(batch, model), seq2seq)
                (loss_sum / n_units).backward()
                step_loss += float(loss_sum.detach())
                _add_metrics(step_metrics, metrics)
            if sharded:  # FSDP2 gathers and reduces in every forward and backward: every rank runs as many
                for _ in range(_idle_micro_batches(len(examples), n_ranks, rank, cfg.batch_size, objective)):
                    batch = objective.collate(examples[: objective.min_batch_size], pad_id, seq2seq, **context)
                    with precision_context(model, cfg.autocast_dtype):
                        loss_sum, _ = objective.loss(model, on_model_device(batch, model), seq2seq)
                    (loss_sum * 0.0).backward()  # takes part in the collectives, adds nothing
            if n_ranks > 1:
                if not sharded:  # FSDP2 already reduce-scattered the sum
                    sum_gradients(params)
                step_loss, step_metrics, real_tokens, padding_tokens = _sum_over_ranks(
                    step_loss, step_metrics, real_tokens, padding_tokens
                )
            result.input_tokens += real_tokens
            result.padding_tokens += padding_tokens
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            scheduler.step()
            result.steps = step + 1
            result.target_tokens += n_tokens
            run_tokens += n_tokens
            window_loss, window_units = window_loss + step_loss, window_units + n_units
            result.loss_history.append((step + 1, step_loss / n_units))
            figures = _means(step_metrics)
            elapsed = time.perf_counter() - started
            result.seconds = earlier_seconds + elapsed
            bar.set_postfix(loss=f"{step_loss / n_units:.3f}", tok_s=f"{run_tokens / elapsed:.0f}")
            bar.update(1)
            done = step + 1
            if done % cfg.eval_every == 0 or done == total_steps:
                result.dev_loss, dev_figures = dev_metrics(
                    model, dev, pad_id, seq2seq, cfg.batch_size, cfg.autocast_dtype, objective
                )
                figures.update({f"dev_{name}": value for name, value in dev_figures.items()})
                if result.dev_loss is not None:
                    result.dev_history.append((done, result.dev_loss))
                    if main:
                        bar.write(
                            f"step {done}: train loss {window_loss / window_units:.4f}, dev loss {result.dev_loss:.4f}"
                        )
                result.train_loss = window_loss / window_units
                window_loss, window_units = 0.0, 0
            if figures:
                result.metric_history.append((done, figures))
            if done % cfg.save_every == 0 and done < total_steps:
                saved_step = done
                rngs = _rng_states_of_every_rank(n_ranks)  # every rank takes part; the main one writes
                weights = _trainable_state(model)  # whole tensors: under FSDP every rank takes part
                optimizer_state = full_optimizer_state(optimizer) if sharded else optimizer.state_dict()
                if main:
                    window = (window_loss, window_units)
                    _save_checkpoint(ckpt, weights, optimizer_state, scheduler, result, done, window, rngs, n_ranks)
            if cfg.stop_after is not None and done == cfg.stop_after and done < total_steps:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        # no collective here: after Ctrl-C another rank may be stuck in one, so only this rank's state is
        # kept, and the other ranks resume with fresh seeds (periodic checkpoints keep every rank's)
        if sharded and saved_step != result.steps:
            # gathering sharded weights is a collective, which another rank may never join after Ctrl-C
            kept = f"step {saved_step}" if saved_step else "no step"
            raise TrainingInterrupted(
                f"Training interrupted after step {result.steps} of {total_steps}. Under FSDP only periodic "
                f"checkpoints are written (train.save_every); {ckpt} holds {kept}: run the same command with "
                "--resume to continue from it."
            ) from None
        if main and saved_step != result.steps:  # else the periodic one, with every rank's state, is current
            window = (window_loss, window_units)
            weights, optimizer_state = _trainable_state(model), optimizer.state_dict()
            _save_checkpoint(
                ckpt, weights, optimizer_state, scheduler, result, result.steps, window, [rng_state()], n_ranks
            )
        raise TrainingInterrupted(
            f"Training interrupted after step {result.steps} of {total_steps}. A checkpoint is saved in "
            f"{ckpt}; run the same command with --resume to continue."
        ) from None
    bar.close()
    if sharded:
        unshard_for_good(model)  # saving, evaluation and generation then run on a plain model
    if window_units:
        result.train_loss = window_loss / window_units
    return result


def _sum_over_ranks(
    loss: float, metrics: dict[str, list[float]], real_tokens: int, padding_tokens: int
) -> tuple[float, dict[str, list[float]], int, int]:
    """The step's loss sum, objective figures and token counts summed over every rank, in rank order
    (the same order on every rank, so every rank logs the same numbers)."""
    total_loss, total_metrics, total_real, total_padding = 0.0, {}, 0, 0
    for rank_loss, rank_metrics, rank_real, rank_padding in gather_all((loss, metrics, real_tokens, padding_tokens)):
        total_loss += rank_loss
        _add_metrics(total_metrics, rank_metrics)
        total_real += rank_real
        total_padding += rank_padding
    return total_loss, total_metrics, total_real, total_padding


def _rng_states_of_every_rank(n_ranks: int) -> list[dict]:
    """Every rank's random state, in rank order (collective: every rank calls it)."""
    return gather_all(rng_state()) if n_ranks > 1 else [rng_state()]


def _idle_micro_batches(n_items: int, n_ranks: int, rank: int, batch_size: int, objective: Objective) -> int:
    """How many more micro-batches another rank runs this step than this one (0 for the busiest)."""

    def count(r: int) -> int:
        return len(micro_batches(list(rank_slice(range(n_items), r, n_ranks)), batch_size, objective.min_batch_size))

    return max(count(r) for r in range(n_ranks)) - count(rank)


def _trainable_state(model) -> dict[str, torch.Tensor]:
    """Whole trainable tensors by name (under FSDP a collective: every rank calls it)."""
    return {n: full(p.detach()).clone() for n, p in model.named_parameters() if p.requires_grad}


def _save_checkpoint(
    path: Path,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict,
    scheduler,
    result: TrainResult,
    step: int,
    window: tuple[float, int],
    rngs: list[dict],
    processes: int = 1,
) -> None:
    """Write the checkpoint to a temporary folder, then swap it in (never a half-written 'last').

    ``window`` is the (summed loss, units) of the unfinished logging window, so a resumed
    run reports the same train_loss as an uninterrupted one. ``rngs`` holds the random state of
    every rank (rank order), or of the first ones only: each rank resumes with its own dropout stream
    where kept. ``processes``: how many processes trained. ``weights`` and ``optimizer_state`` are whole
    tensors in the single-process layout, also after FSDP training.
    """
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(
        {
            "step": step,
            "params": weights,
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict(),
            "rng": rngs[0],
            "rng_by_rank": rngs,
            "processes": processes,
            "result": result.to_dict(),
            "window": list(window),
        },
        tmp / "state.pt",
    )
    old = path.with_name(path.name + ".old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def _load_checkpoint(
    path: Path,
    model,
    optimizer,
    scheduler,
    result: TrainResult,
    rank: int = 0,
    n_ranks: int = 1,
    sharded: bool = False,
) -> tuple[int, float, int]:
    """Restore a checkpoint into model, optimizer, scheduler and result (this rank's random state);
    returns (step, window loss, window units). ``sharded``: the model is sharded with FSDP2 (each rank
    keeps its shard of the whole tensors saved).

    Raises:
        MedtuneError: the checkpoint was written by a run with another number of processes (its
            global batches, and so its data position, differ); or it belongs to another model.
    """
    state = torch.load(path / "state.pt", weights_only=False)
    processes = state.get("processes", 1)
    if processes != n_ranks:
        raise MedtuneError(
            f"The checkpoint {path} was written by a run with {processes} process(es), and this run has {n_ranks}. "
            f"The global batch is train.batch_size x train.grad_accum x processes, so the data position only "
            f"carries over with the same number: resume with {processes} process(es) (accelerate launch "
            f"--num_processes {processes}), or start over without --resume."
        )
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["params"].items():
            if name not in named:
                raise MedtuneError(f"Checkpoint {path} does not match this model (no parameter {name}).")
            named[name].copy_(like(value, named[name]))
    optimizer.load_state_dict(state["optimizer"])
    if sharded:
        shard_optimizer_state(optimizer)
    scheduler.load_state_dict(state["scheduler"])
    kept = state.get("rng_by_rank", [state["rng"]])
    if rank < len(kept):  # else the fresh per-rank seed stays (see _save_checkpoint)
        set_rng_state(kept[rank])
    saved = state["result"]
    result.steps = state["step"]
    result.target_tokens = saved["target_tokens"]
    result.seconds = saved["train_seconds"]
    result.dev_history = [tuple(x) for x in saved["dev_history"]]
    result.loss_history = [tuple(x) for x in saved["loss_history"]]
    result.metric_history = [(step, dict(figures)) for step, figures in saved.get("metric_history", [])]
    result.dev_loss = saved["dev_loss"]
    result.input_tokens = saved.get("input_tokens", 0)
    result.padding_tokens = saved.get("padding_tokens", 0)
    result.train_loss = saved["train_loss"]
    window_loss, window_units = state.get("window", (0.0, 0))
    return state["step"], window_loss, window_units
