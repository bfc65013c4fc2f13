"""Reproducible train/dev/test splits, by sentence or by document."""

from __future__ import annotations

import random
from collections import OrderedDict

from medtune.data.parallel import Pair
from medtune.data.validate import ValidationReport, left_after
from medtune.errors import MedtuneError


def split_pairs(
    pairs: list[Pair],
    test_size: float,
    dev_size: float,
    seed: int,
    by: str = "document",
    validation: ValidationReport | None = None,
) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """Split into (train, dev, test) from a seed.

    ``by="document"`` keeps all sentences of a document on the same side (no leakage of
    context between train and test); pairs without a document id count as their own document.
    ``by="random"`` shuffles sentences. Sizes are fractions of the pairs (documents are added
    until the fraction is reached).

    Raises:
        MedtuneError: bad sizes, or too few pairs for a non-empty test split (when ``test_size`` > 0)
            and a training split; the message counts the rows ``validation`` dropped and why.
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
    if not train or (test_size > 0 and not test):
        empty = "training" if not train else "test"
        raise MedtuneError(
            f"Too few pairs to split: {_pairs_left(n, len(groups), by, validation)}; data.test_size={test_size} and "
            f"data.dev_size={dev_size} leave the {empty} split empty. Add pairs, change those sizes, or give "
            "a test file with data.test."
        )
    return train, dev, test


def _pairs_left(n: int, n_groups: int, by: str, validation: ValidationReport | None) -> str:
    """E.g. '1 pair in 1 document, left after validation (train: 50 pairs, 49 dropped (49 exact duplicate ...))'."""
    counted = f"{n} pair{'' if n == 1 else 's'}"
    if by == "document":
        counted += f" in {n_groups} document{'' if n_groups == 1 else 's'}"
    return counted + left_after(validation)
