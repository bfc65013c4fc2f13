"""Reproducible subsets of any list of items: a sample of n, or a train/eval split.

Both keep the items' original order inside each result, so a run's data reads like its source file.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

from medtune.errors import MedtuneError

T = TypeVar("T")


def sample_items(items: list[T], n: int | None, seed: int) -> list[T]:
    """Pick ``n`` items at random, reproducibly from ``seed``, keeping their original order.

    Args:
        items: the population.
        n: how many to keep; ``None`` or ``n >= len(items)`` keeps all (a copy).
        seed: the same seed and items give the same sample.
    Returns:
        The chosen items in the order they had in ``items``.
    Raises:
        MedtuneError: when ``n`` is negative.
    """
    if n is None or n >= len(items):
        return list(items)
    if n < 0:
        raise MedtuneError(f"Cannot sample {n} items: the sample size must be 0 or more (or empty for all).")
    chosen = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in chosen]


def eval_count(n_items: int, eval_size: float | int) -> int:
    """How many of ``n_items`` go to evaluation.

    ``eval_size`` below 1 is a fraction (rounded to the nearest item); 1 or more is a whole count.

    Raises:
        MedtuneError: negative sizes or fractional counts, naming ``data.eval_size``.
    """
    if isinstance(eval_size, bool) or eval_size < 0:
        raise MedtuneError(f"data.eval_size must be a fraction in [0, 1) or a count of items, got {eval_size!r}.")
    if eval_size < 1:
        return round(eval_size * n_items)
    if int(eval_size) != eval_size:
        raise MedtuneError(
            f"data.eval_size={eval_size} is neither a fraction below 1 nor a whole count of items; "
            f"use e.g. 0.1 for 10% or {int(eval_size)} for {int(eval_size)} items."
        )
    return int(eval_size)


def split_items(items: list[T], eval_size: float | int, seed: int) -> tuple[list[T], list[T]]:
    """Split items into (train, eval), reproducibly from ``seed``.

    Args:
        items: everything available.
        eval_size: a fraction below 1 (``0.1`` = 10%, rounded) or a count (``50``); ``0`` means no eval set.
        seed: the same seed and items give the same split.
    Returns:
        ``(train, eval)``: disjoint, together all items, each in the original order.
    Raises:
        MedtuneError: naming ``data.eval_size`` when it is invalid, or when a non-zero size leaves
            the eval set or the training set empty.
    """
    k = eval_count(len(items), eval_size)
    if eval_size == 0:
        return list(items), []
    if k == 0 or k >= len(items):
        side = "evaluation" if k == 0 else "training"
        raise MedtuneError(
            f"data.eval_size={eval_size} of {len(items)} items leaves the {side} set empty "
            f"({k} for evaluation). Choose a size between 1 and {len(items) - 1} items, or 0 for no evaluation set."
        )
    held_out = set(random.Random(seed).sample(range(len(items)), k))
    train = [item for i, item in enumerate(items) if i not in held_out]
    evaluation = [item for i, item in enumerate(items) if i in held_out]
    return train, evaluation


def few_shot_examples(
    items: list[T], k: int, choose: Callable[[list[T], int], list[T]], data: str, unit: str, pool: list[T] | None = None
) -> tuple[list[T], list[T]]:
    """Choose ``k`` few-shot examples, from ``pool`` or else from the items to score (which then lose them).

    Args:
        items: the items to score.
        k: how many examples (``--few-shot``); 0 chooses none.
        choose: picks ``k`` examples from a list (seeded by the caller).
        data: the ``--data`` spec, for messages.
        unit: what an item is, for messages ("pairs", "questions").
        pool: the examples' own source (``--few-shot-data``), when given.
    Returns:
        ``(examples, items to score)``; the items keep their order.
    Raises:
        MedtuneError: ``pool`` has fewer than ``k`` items, or taking ``k`` from ``items`` leaves none to score.
    """
    if not k:
        return [], items
    if pool is not None:
        if len(pool) < k:
            raise MedtuneError(
                f"--few-shot {k} needs {k} examples, but --few-shot-data has only {len(pool)} usable {unit}. "
                f"Use --few-shot {len(pool)} or less, or give a larger --few-shot-data file."
            )
        return choose(pool, k), items
    if k >= len(items):
        raise MedtuneError(
            f"--few-shot {k} takes its examples from {data}, which has {len(items)} usable {unit}: none would be "
            f"left to score. Use --few-shot {max(len(items) - 1, 0)} or less, or give the examples with --few-shot-data."
        )
    examples = choose(items, k)
    chosen = {id(example) for example in examples}
    return examples, [item for item in items if id(item) not in chosen]
