"""split_pairs: reproducible from a seed, documents never straddle two sides."""

from __future__ import annotations

import pytest

from medtune.data.parallel import Pair
from medtune.data.split import split_pairs
from medtune.errors import MedtuneError


def _corpus(docs: int = 40, per_doc: int = 5) -> list[Pair]:
    return [
        Pair(
            f"Sentence {s} of leaflet {d}.",
            f"Frase {s} del prospecto {d}.",
            f"doc-{d}",
            f"f.jsonl:{d * per_doc + s + 1}",
        )
        for d in range(docs)
        for s in range(per_doc)
    ]


@pytest.mark.parametrize("by", ["document", "random"])
def test_same_seed_same_split(by):
    pairs = _corpus()
    assert split_pairs(pairs, 0.2, 0.1, seed=7, by=by) == split_pairs(pairs, 0.2, 0.1, seed=7, by=by)


@pytest.mark.parametrize("by", ["document", "random"])
def test_other_seed_other_split(by):
    pairs = _corpus()
    _, _, test_a = split_pairs(pairs, 0.2, 0.1, seed=7, by=by)
    _, _, test_b = split_pairs(pairs, 0.2, 0.1, seed=8, by=by)
    assert test_a != test_b


@pytest.mark.parametrize("seed", range(5))
def test_by_document_keeps_each_doc_on_one_side(seed):
    # Uneven document sizes make it harder to land exactly on the fractions.
    pairs = [p for i, p in enumerate(_corpus(docs=30, per_doc=7)) if i % 3 != 0 or i % 7 < 3]
    train, dev, test = split_pairs(pairs, 0.15, 0.1, seed=seed, by="document")
    sides = [{p.doc for p in part} for part in (train, dev, test)]
    assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
    assert sorted(train + dev + test, key=lambda p: p.origin) == sorted(pairs, key=lambda p: p.origin)


def test_pairs_without_doc_count_as_their_own_document():
    pairs = [Pair(f"Line {i}.", f"Línea {i}.", None, f"f.csv:{i}") for i in range(2, 102)]
    train, dev, test = split_pairs(pairs, 0.1, 0.05, seed=1, by="document")
    assert (len(train), len(dev), len(test)) == (85, 5, 10)


def test_random_split_sizes_match_fractions_exactly():
    pairs = _corpus(docs=20, per_doc=10)  # 200 pairs
    train, dev, test = split_pairs(pairs, 0.12, 0.04, seed=42, by="random")
    assert (len(train), len(dev), len(test)) == (168, 8, 24)
    assert len({p.origin for p in train + dev + test}) == 200


def test_document_split_sizes_roughly_match_fractions():
    pairs = _corpus(docs=40, per_doc=5)  # 200 pairs, documents of 5
    train, dev, test = split_pairs(pairs, 0.2, 0.1, seed=3, by="document")
    # Whole documents are added until the fraction is reached: at most one document over.
    assert 40 <= len(test) < 40 + 5
    assert 20 <= len(dev) < 20 + 5
    assert len(train) == 200 - len(test) - len(dev)


def test_zero_fractions_keep_everything_for_training():
    pairs = _corpus(docs=3, per_doc=2)
    train, dev, test = split_pairs(pairs, 0.0, 0.0, seed=0)
    assert (dev, test) == ([], []) and sorted(train, key=lambda p: p.origin) == sorted(pairs, key=lambda p: p.origin)


@pytest.mark.parametrize(("test_size", "dev_size"), [(1.0, 0.0), (-0.1, 0.1), (0.1, 1.5), (0.6, 0.4), (0.7, 0.5)])
def test_invalid_fractions_raise(test_size, dev_size):
    with pytest.raises(MedtuneError, match=r"data\.test_size .* data\.dev_size .* fractions"):
        split_pairs(_corpus(), test_size, dev_size, seed=0)


def test_unknown_split_kind_raises():
    with pytest.raises(MedtuneError, match="data.split must be 'random' or 'document', got 'sentence'"):
        split_pairs(_corpus(), 0.1, 0.1, seed=0, by="sentence")


def test_split_leaving_no_training_pairs_raises():
    # One document holding every pair goes wholly to the test side.
    pairs = [Pair(f"Line {i}.", f"Línea {i}.", "only-doc", f"f.csv:{i}") for i in range(10)]
    with pytest.raises(
        MedtuneError, match="Too few pairs to split: 10 pairs in 1 document; .*leave the training split empty"
    ):
        split_pairs(pairs, 0.1, 0.0, seed=0, by="document")


def _list_split(pairs, test_size, dev_size, seed, by):
    """The split as medtune did it on lists of pairs before it worked on row indices: the oracle."""
    import random
    from collections import OrderedDict

    rng = random.Random(seed)
    if by == "random":
        groups = [[p] for p in pairs]
    else:
        grouped: OrderedDict[str, list[Pair]] = OrderedDict()
        for i, pair in enumerate(pairs):
            grouped.setdefault(pair.doc if pair.doc is not None else f"#row{i}", []).append(pair)
        groups = list(grouped.values())
    rng.shuffle(groups)
    test, dev, train = [], [], []
    for group in groups:
        if len(test) < round(test_size * len(pairs)):
            test.extend(group)
        elif len(dev) < round(dev_size * len(pairs)):
            dev.extend(group)
        else:
            train.extend(group)
    return train, dev, test


@pytest.mark.parametrize("by", ["document", "random"])
@pytest.mark.parametrize("seed", range(4))
def test_index_split_equals_the_list_split_in_content_and_order(by, seed):
    import random

    rng = random.Random(100 + seed)
    # Documents of uneven sizes, interleaved (a document's rows need not be adjacent), some rows without one.
    pairs = [
        Pair(f"S{i}.", f"F{i}.", None if rng.random() < 0.2 else f"d{rng.randrange(60)}", f"f:{i}") for i in range(500)
    ]
    assert split_pairs(pairs, 0.13, 0.07, seed, by) == _list_split(pairs, 0.13, 0.07, seed, by)
