"""Work shared across the processes of an ``accelerate launch``/``torchrun`` run: items, order, who writes.

Evaluation, generation and judging give each process a contiguous share of the items
(``item_shard``) and put the shares back together in item order (``gather_in_order``), so the
result is the one a single process gives. ``main_process_first`` lets the main process build
something every process reads (a cache, a data stage's files) while the others wait. In a single
process every function is the plain, collective-free path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import torch.distributed as dist

from medtune.errors import MedtuneError
from medtune.train.distributed import world

T = TypeVar("T")

__all__ = ["barrier", "gather_in_order", "gather_rounds", "item_shard", "main_process_first", "quiet_unless_main"]


def item_shard(count: int) -> range:
    """This process's contiguous share of ``count`` items (all of them in a single process).

    Shares differ in size by at most one and, taken in rank order, cover 0..count-1 exactly once.
    """
    rank, size = world()
    base, extra = divmod(count, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def gather_in_order(local: Sequence[T]) -> list[T]:
    """Every process's ``local`` results (from ``item_shard``), concatenated in rank order = item order.

    Every process receives the whole list; the objects must be picklable.
    """
    rank, size = world()
    if size == 1:
        return list(local)
    shares: list[list[T] | None] = [None] * size
    dist.all_gather_object(shares, list(local))
    return [item for share in shares for item in share or []]


def barrier() -> None:
    """Wait until every process got here (nothing to wait for in a single process)."""
    _, size = world()
    if size > 1:
        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[bool]:
    """Run the body on the main process first, then on the others; yields whether this is the main process.

    Use it for work every process needs whose result the main process writes (a cache, a data split):
    the others enter only once it is written, and find it there.
    """
    rank, size = world()
    if rank != 0:
        barrier()
    try:
        yield rank == 0
    finally:
        if rank == 0 and size > 1:
            barrier()


def quiet_unless_main() -> bool:
    """Whether this is the main process (joining the process group under a launcher, so call it first).

    The other processes turn off transformers' own progress bars (loading weights), so that a launch
    shows one of each; medtune's messages are the caller's to keep to the main process.
    """
    rank, _ = world()
    if rank != 0:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    return rank == 0


R = TypeVar("R")


def gather_rounds(items: Sequence[T], per_round: int, work: Callable[[list[T]], list[R]]) -> Iterator[list[R]]:
    """Work through ``items`` spread over the processes, yielding every round's results in item order.

    Each process takes its ``item_shard`` and calls ``work`` on ``per_round`` of its items a round; a
    round yields all processes' results, concatenated in rank order (on every process), so the caller
    can write them (on the main process) before the next round: incremental, resumable output. Every
    process joins every round, also once its own share is done. In a single process this is plain
    batching.

    Raises:
        The exception ``work`` raised, on the process where it was raised; ``MedtuneError`` naming that
        process and its error on the others (so no process is left waiting for a failed one).
    """
    shard = item_shard(len(items))
    mine = list(items[shard.start : shard.stop])
    rounds = -(-max(gather_in_order([len(mine)])) // per_round)
    for start in range(0, rounds * per_round, per_round):
        chunk = mine[start : start + per_round]
        failure: Exception | None = None
        try:
            local = work(chunk) if chunk else []
        except Exception as exc:  # reported to the other processes before it is raised here
            local, failure = [], exc
        shares = gather_in_order([(local, None if failure is None else f"{type(failure).__name__}: {failure}")])
        if failure is not None:
            raise failure
        for rank, (_, error) in enumerate(shares):
            if error is not None:
                raise MedtuneError(f"Process {rank} of this run failed, so this one stops too: {error}")
        yield [result for results, _ in shares for result in results]
