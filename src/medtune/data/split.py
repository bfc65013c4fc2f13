"""Reproducible train/dev/test splits, by sentence or by document.

The split works on row indices and document group ids, not on the rows, so a corpus read as a
stream (``data/pair_spool.py``) splits exactly as the same pairs held in a list.
"""

from __future__ import annotations

import random
from array import array

import numpy as np

from medtune.data.digest import text_digest
from medtune.data.parallel import Pair
from medtune.data.validate import ValidationReport, left_after
from medtune.errors import MedtuneError

SPLIT_BY = ("random", "document")


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
    check_split_settings(test_size, dev_size, by)
    groups = DocumentGroups(by)
    for pair in pairs:
        groups.add(pair.doc)
    sides = split_rows(groups, test_size, dev_size, seed, validation)
    return tuple([pairs[i] for i in rows] for rows in sides)  # type: ignore[return-value]


def check_split_settings(test_size: float, dev_size: float, by: str) -> None:
    """Refuse split sizes that are not fractions summing below 1, and an unknown ``data.split``."""
    if not 0 <= test_size < 1 or not 0 <= dev_size < 1 or test_size + dev_size >= 1:
        raise MedtuneError(
            f"data.test_size ({test_size}) and data.dev_size ({dev_size}) must be fractions in "
            "[0, 1) whose sum is below 1."
        )
    if by not in SPLIT_BY:
        raise MedtuneError(f"data.split must be 'random' or 'document', got {by!r}.")


class DocumentGroups:
    """The split group of each row, numbered in first-seen order, built one row at a time.

    ``by="document"``: rows with the same document id share a group, a row without one is its own;
    ``by="random"``: every row is its own group. Costs a few bytes per row plus a digest per document.
    """

    def __init__(self, by: str) -> None:
        self.by = by
        self.of_row = array("q")
        self.count = 0
        self._ids: dict[bytes, int] = {}  # document digest -> group

    def add(self, doc: str | None) -> None:
        """Record the next row's document id."""
        if self.by == "document" and doc is not None:
            group = self._ids.setdefault(text_digest(doc), self.count)
        else:
            group = self.count
        self.count += group == self.count
        self.of_row.append(group)


def split_rows(
    groups: DocumentGroups,
    test_size: float,
    dev_size: float,
    seed: int,
    validation: ValidationReport | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The row indices of (train, dev, test), each in output order: groups shuffled from ``seed``,
    then given to test, then dev, until each holds its fraction of the rows; the rest is train.
    A group's rows stay in file order.

    Raises:
        MedtuneError: the training split, or the test split when ``test_size`` > 0, is empty.
    """
    of_row = np.frombuffer(groups.of_row, dtype=np.int64).copy() if len(groups.of_row) else np.zeros(0, np.int64)
    n = len(of_row)
    sizes = np.bincount(of_row, minlength=groups.count)
    order = list(range(groups.count))
    random.Random(seed).shuffle(order)  # the permutation depends only on the count: same as shuffling the groups
    test_quota, dev_quota = round(test_size * n), round(dev_size * n)
    side = np.zeros(groups.count, dtype=np.int8)  # 0 train, 1 dev, 2 test
    in_test = in_dev = 0
    for group, size in zip(order, sizes[order].tolist(), strict=True):
        if in_test < test_quota:
            side[group], in_test = 2, in_test + size
        elif in_dev < dev_quota:
            side[group], in_dev = 1, in_dev + size
    ordered = np.asarray(order, dtype=np.int64)
    rows_by_group = np.argsort(of_row, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    train, dev, test = (_rows_of(ordered[side[ordered] == s], sizes, starts, rows_by_group) for s in (0, 1, 2))
    if not len(train) or (test_size > 0 and not len(test)):
        empty = "training" if not len(train) else "test"
        raise MedtuneError(
            f"Too few pairs to split: {_pairs_left(n, groups.count, groups.by, validation)}; "
            f"data.test_size={test_size} and data.dev_size={dev_size} leave the {empty} split empty. Add pairs, "
            "change those sizes, or give a test file with data.test."
        )
    return train, dev, test


def _rows_of(chosen: np.ndarray, sizes: np.ndarray, starts: np.ndarray, rows_by_group: np.ndarray) -> np.ndarray:
    """The rows of the ``chosen`` groups, group after group, each group's rows in file order."""
    counts = sizes[chosen]
    first_of_each = np.repeat(np.cumsum(counts) - counts, counts)
    return rows_by_group[np.arange(counts.sum()) - first_of_each + np.repeat(starts[chosen], counts)]


def _pairs_left(n: int, n_groups: int, by: str, validation: ValidationReport | None) -> str:
    """E.g. '1 pair in 1 document, left after validation (train: 50 pairs, 49 dropped (49 exact duplicate ...))'."""
    counted = f"{n} pair{'' if n == 1 else 's'}"
    if by == "document":
        counted += f" in {n_groups} document{'' if n_groups == 1 else 's'}"
    return counted + left_after(validation)
