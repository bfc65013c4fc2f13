"""Data-parallel training across processes (``accelerate launch``, ``torchrun``) for medtune's own loop.

Every rank builds the same global batch plan and takes a contiguous slice of each global batch, so
N processes with ``train.batch_size`` B see exactly the batches of 1 process with N·B. Gradients are
summed with an explicit all-reduce after backward rather than a DDP wrapper: DDP averages (so every
loss would need rescaling by N), and wrapping hides the PEFT model behind ``.module`` from the
objectives; summing the per-rank gradients of ``loss_sum / global_units`` is exactly the gradient
of the single-process loss.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world() -> tuple[int, int]:
    """(this process's rank, number of processes); starts the process group when launched with several.

    ``accelerate.PartialState`` reads the launcher's environment (``accelerate launch``, ``torchrun``)
    and starts the group: nccl on GPUs, gloo on CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        from accelerate import PartialState

        # without cpu=True accelerate finds no GPU backend, calls the group "not distributed" and leaves
        # torch to pick one; with it, it knows the run is multi-CPU and starts gloo itself
        PartialState(cpu=_on_cpu())
    return dist.get_rank(), dist.get_world_size()


def _on_cpu() -> bool:
    """The processes train on CPU: no GPU here, or the launcher was told to use the CPU."""
    return not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")


def rank_slice(items: Sequence[T], rank: int, size: int) -> Sequence[T]:
    """This rank's contiguous share of a global batch (shares differ by at most one item); a range
    gives a range."""
    base, extra = divmod(len(items), size)
    start = rank * base + min(rank, extra)
    return items[start : start + base + (1 if rank < extra else 0)]


def sum_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum every trainable gradient over the ranks (a rank with no items this step contributes zeros)."""
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    # one flat buffer: one collective per step instead of one per parameter
    flat = torch.cat([param.grad.reshape(-1) for param in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for param in params:
        count = param.numel()
        param.grad.copy_(flat[offset : offset + count].view_as(param.grad))
        offset += count


def sum_over_processes(values: torch.Tensor) -> torch.Tensor:
    """``values`` summed element-wise over every process (unchanged in a single process)."""
    if world()[1] == 1:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_all(value):
    """``value`` from every rank, in rank order (any picklable object)."""
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered
