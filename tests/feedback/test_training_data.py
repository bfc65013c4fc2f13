"""Judgments aggregated per item (mean of several reviewers, latest post-edit) and the held-out split."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from medtune.errors import MedtuneError
from medtune.feedback.training_data import ItemFeedback, item_feedback, split_heldout


@dataclass(frozen=True)
class Judgment:
    """The fields of ``medtune.feedback.store.JudgmentView`` that aggregation reads."""

    id: int
    item_id: str
    score: float
    post_edit: str | None = None
    simulated: bool = False
    project: str = "p"
    reviewer: str = "r"
    imported: bool = False
    flags: tuple[str, ...] = ()
    comment: str | None = None
    seconds: float | None = None
    created_at: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    source: str = "src"
    translation: str = "mt"
    reference: str | None = "ref"
    model_id: str = "m"


def test_mean_of_several_reviewers_latest_post_edit_and_item_order():
    judgments = [
        Judgment(3, "b", 0.2, post_edit="edit 1", reviewer="ana"),
        Judgment(1, "a", 1.0, source="s-a", translation="t-a", reference=None),
        Judgment(7, "b", 0.5, post_edit="   ", reviewer="luis", simulated=True),  # blank: no post-edit
        Judgment(5, "b", 0.8, post_edit="edit 2", reviewer="eva"),
    ]
    items = item_feedback(judgments)
    assert [i.item_id for i in items] == ["a", "b"]
    a, b = items
    assert a == ItemFeedback("a", "s-a", "t-a", None, 1.0, None, 1, (1.0,), False)
    assert b.score == pytest.approx((0.2 + 0.8 + 0.5) / 3)
    assert b.scores == (0.2, 0.8, 0.5)  # judgment-id order
    assert b.post_edit == "edit 2"  # the latest non-empty one (id 5; id 7 is blank)
    assert b.judgments == 3 and b.simulated
    assert ItemFeedback.from_record(b.to_record()) == b


def _items(n: int) -> list[ItemFeedback]:
    return [ItemFeedback(f"item-{i:03d}", "s", "t", None, 0.5, None, 1, (0.5,), False) for i in range(n)]


def test_split_is_deterministic_by_item_id_and_disjoint():
    items = _items(50)
    train, held = split_heldout(items, 0.2, seed=7)
    assert len(held) == 10 and len(train) == 40
    assert {i.item_id for i in train} | {i.item_id for i in held} == {i.item_id for i in items}
    assert not {i.item_id for i in train} & {i.item_id for i in held}
    assert [i.item_id for i in held] == sorted(i.item_id for i in held)
    shuffled = list(items)
    random.Random(1).shuffle(shuffled)
    assert split_heldout(shuffled, 0.2, seed=7) == (train, held)  # input order does not matter
    assert split_heldout(items, 0.2, seed=8)[1] != held  # the seed does
    assert split_heldout(items, 0.0, seed=7) == (sorted(items, key=lambda i: i.item_id), [])


def test_split_refuses_a_share_that_leaves_nothing_to_train():
    with pytest.raises(MedtuneError, match=r"feedback\.heldout=0\.9 of 2 judged items"):
        split_heldout(_items(2), 0.9, seed=0)
    with pytest.raises(MedtuneError, match=r"feedback\.heldout=1"):
        split_heldout(_items(5), 1.0, seed=0)
