"""Reproducible train/dev/test splits, by sentence or by document."""

from __future__ import annotations

import random
from collections import OrderedDict

from medtune.data.parallel import Pair
from medtune.errors import MedtuneError


def split_pairs(
    pairs: list[Pair], test_size: float, dev_size: float, seed: int, by: str = "document"
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Split into (train, dev, test) from a seed.

    ``by="document"`` keeps all sentences of a document on the same side (no leakage of
    context between train and test); pairs without a document id count as their own document.
    ``by="random"`` shuffles sentences. Sizes are fractions of the pairs (documents are added
    until the fraction is reached).
    """
    if not 0 <= test_size < 1 or not 0 <= dev_size < 1 or test_size + dev_size >= 1:
        raise MedtuneError(
            f"data.test_size ({test_size}) and data.dev_size ({dev_size}) must be fractions in "
            "[0, 1) whose sum is below 1."
        )
    rng = random.Random(seed)
    if by == "random":
        groups = [[p] for p in pairs]
    elif by == "document":
        grouped: OrderedDict[str, list[Pair]] = OrderedDict()
        for i, pair in enumerate(pairs):
            grouped.setdefault(pair.doc if pair.doc is not None else f"#row{i}", []).append(pair)
        groups = list(grouped.values())
    else:
        raise MedtuneError(f"data.split must be 'random' or 'document', got {by!r}.")
    rng.shuffle(groups)
    n = len(pairs)
    test, dev, train = [], [], []
    for group in groups:
        if len(test) < round(test_size * n):
            test.extend(group)
        elif len(dev) < round(dev_size * n):
            dev.extend(group)
        else:
            train.extend(group)
    if not train:
        raise MedtuneError(f"The split left no training pairs out of {n}; lower the test/dev sizes.")
    return train, dev, test
