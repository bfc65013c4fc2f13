"""sample_items and split_items: reproducible, order-keeping, disjoint; sizes checked with data.eval_size."""

from __future__ import annotations

import pytest

from medtune.data.sampling import eval_count, sample_items, split_items
from medtune.errors import MedtuneError

ITEMS = [f"item{i:02d}" for i in range(20)]


def test_sample_is_reproducible_ordered_and_sized():
    first = sample_items(ITEMS, 5, seed=3)
    assert first == sample_items(ITEMS, 5, seed=3)
    assert len(first) == len(set(first)) == 5
    assert first == sorted(first)  # original order kept
    assert set(first) <= set(ITEMS)
    assert any(sample_items(ITEMS, 5, seed=s) != first for s in range(4, 10))


def test_sample_all_when_n_is_none_or_too_large():
    assert sample_items(ITEMS, None, seed=0) == ITEMS
    assert sample_items(ITEMS, 20, seed=0) == ITEMS
    assert sample_items(ITEMS, 99, seed=0) == ITEMS
    assert sample_items(ITEMS, 99, seed=0) is not ITEMS
    assert sample_items(ITEMS, 0, seed=0) == []


def test_negative_sample_size_is_an_error():
    with pytest.raises(MedtuneError, match="must be 0 or more"):
        sample_items(ITEMS, -1, seed=0)


@pytest.mark.parametrize(
    ("eval_size", "expected"), [(0.1, 2), (0.25, 5), (0.12, 2), (0.13, 3), (3, 3), (3.0, 3), (1, 1)]
)
def test_eval_count_fraction_or_count(eval_size, expected):
    # 20 items: 0.12 * 20 = 2.4 -> 2, 0.13 * 20 = 2.6 -> 3; 1 and above are counts.
    assert eval_count(20, eval_size) == expected


def test_split_is_reproducible_disjoint_complete_and_ordered():
    train, evaluation = split_items(ITEMS, 0.25, seed=11)
    assert (train, evaluation) == split_items(ITEMS, 0.25, seed=11)
    assert len(evaluation) == 5 and len(train) == 15
    assert not set(train) & set(evaluation)
    assert sorted(train + evaluation) == ITEMS
    assert train == sorted(train) and evaluation == sorted(evaluation)
    assert split_items(ITEMS, 0.25, seed=12)[1] != evaluation


def test_split_by_count_and_zero():
    train, evaluation = split_items(ITEMS, 4, seed=0)
    assert (len(train), len(evaluation)) == (16, 4)
    assert split_items(ITEMS, 0, seed=0) == (ITEMS, [])
    assert split_items(ITEMS, 0.0, seed=0) == (ITEMS, [])


@pytest.mark.parametrize(
    ("eval_size", "message"),
    [
        (0.01, "data.eval_size=0.01 of 20 items leaves the evaluation set empty (0 for evaluation)"),
        (20, "data.eval_size=20 of 20 items leaves the training set empty (20 for evaluation)"),
        (25, "leaves the training set empty"),
        (-0.1, "data.eval_size must be a fraction in [0, 1) or a count of items, got -0.1"),
        (2.5, "data.eval_size=2.5 is neither a fraction below 1 nor a whole count"),
        (True, "data.eval_size must be a fraction"),
    ],
)
def test_split_errors_name_the_option(eval_size, message):
    with pytest.raises(MedtuneError) as err:
        split_items(ITEMS, eval_size, seed=0)
    assert message in str(err.value)
