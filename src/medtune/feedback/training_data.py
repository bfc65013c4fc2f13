"""Reviewers' judgments as training data: one aggregated record per judged item, and a held-out split.

Every feedback objective (kto, dpo, reward-weighted), the reward model and the reports read the
store through :func:`item_feedback`, so "an item judged by several reviewers counts once, with its
mean score" is decided in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medtune.errors import MedtuneError

if TYPE_CHECKING:
    from medtune.feedback.store import JudgmentView


@dataclass(frozen=True)
class ItemFeedback:
    """What the reviewers said about one machine translation.

    Attributes:
        item_id: the store's stable item id.
        source, translation, reference: the source sentence, the machine output judged, the reference
            translation when the item has one.
        score: the mean of the reviewers' scores, in [0, 1].
        post_edit: the latest non-empty post-edit (by judgment id), or None when nobody edited.
        judgments: how many judgments the item has.
        scores: every judgment's score, in judgment order.
        simulated: at least one judgment came from a simulated reviewer (so reports flag it).
    """

    item_id: str
    source: str
    translation: str
    reference: str | None
    score: float
    post_edit: str | None
    judgments: int
    scores: tuple[float, ...]
    simulated: bool

    def to_record(self) -> dict:
        """A JSON-able row (the run folder's ``feedback/*.jsonl``)."""
        return {
            "item_id": self.item_id,
            "source": self.source,
            "translation": self.translation,
            "reference": self.reference,
            "score": self.score,
            "post_edit": self.post_edit,
            "judgments": self.judgments,
            "scores": list(self.scores),
            "simulated": self.simulated,
        }

    @classmethod
    def from_record(cls, record: dict) -> ItemFeedback:
        """The inverse of :meth:`to_record`."""
        return cls(**{**record, "scores": tuple(record["scores"])})


def item_feedback(judgments: Sequence[JudgmentView]) -> list[ItemFeedback]:
    """Aggregate judgments per item: mean score, latest non-empty post-edit, count; ordered by item id.

    ``judgments`` may come in any order: "latest" means the highest judgment id. A post-edit that is
    empty or only whitespace counts as no post-edit.
    """
    by_item: dict[str, list[JudgmentView]] = {}
    for judgment in sorted(judgments, key=lambda j: j.id):
        by_item.setdefault(judgment.item_id, []).append(judgment)
    out = []
    for item_id in sorted(by_item):
        group = by_item[item_id]
        first = group[0]
        edits = [j.post_edit for j in group if j.post_edit is not None and j.post_edit.strip()]
        scores = tuple(float(j.score) for j in group)
        out.append(
            ItemFeedback(
                item_id=item_id,
                source=first.source,
                translation=first.translation,
                reference=first.reference,
                score=sum(scores) / len(scores),
                post_edit=edits[-1] if edits else None,
                judgments=len(group),
                scores=scores,
                simulated=any(j.simulated for j in group),
            )
        )
    return out


def _rank(item_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{item_id}".encode()).hexdigest()


def split_heldout(
    items: Sequence[ItemFeedback], share: float, seed: int
) -> tuple[list[ItemFeedback], list[ItemFeedback]]:
    """Cut ``round(share x len(items))`` items off for evaluation: ``(train, heldout)``, each ordered by item id.

    Which items are held out depends only on each item's id and ``seed`` (the items with the smallest
    hash of seed and id), so the split does not depend on the order the items come in, and judging
    more items later leaves an earlier held-out item held out unless a new one outranks it.

    Raises:
        MedtuneError: ``share`` outside [0, 1), or a share that would leave no item to train on
            (naming ``feedback.heldout``).
    """
    if not 0 <= share < 1:
        raise MedtuneError(f"feedback.heldout={share} must be a share in [0, 1) (e.g. 0.2 for a fifth of the items).")
    k = round(share * len(items))
    if items and k >= len(items):
        raise MedtuneError(
            f"feedback.heldout={share} of {len(items)} judged items leaves none to train on; judge more items or "
            "lower feedback.heldout."
        )
    held = {item.item_id for item in sorted(items, key=lambda i: _rank(i.item_id, seed))[:k]}
    ordered = sorted(items, key=lambda i: i.item_id)
    return [i for i in ordered if i.item_id not in held], [i for i in ordered if i.item_id in held]
