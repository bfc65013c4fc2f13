"""How close one model's translations are to reviewers' post-edits, on judged items held out of training.

The model translates the sources again (greedy, zero-shot, as the test split is scored) and its
translations are scored with chrF++, BLEU and TER against the post-edits; the per-item
``outputs.jsonl`` lets two models (before and after RLHF) be compared item by item
(:func:`medtune.report.feedback.post_edit_comparison`). Whether a model *prefers* the post-edits
(log-probability margin) is :mod:`medtune.feedback.heldout`'s part.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from medtune.data.parallel import Pair
from medtune.errors import MedtuneError
from medtune.eval.translation import evaluate_translation
from medtune.models.loading import LoadedModel


class PostEditedItem(Protocol):
    """A judged item (``medtune.feedback.training_data.ItemFeedback`` is one)."""

    item_id: str
    source: str
    post_edit: str | None


def post_edited(items: Sequence[PostEditedItem]) -> list[PostEditedItem]:
    """The items that carry a non-empty post-edit."""
    return [i for i in items if i.post_edit is not None and i.post_edit.strip()]


def evaluate_against_post_edits(
    loaded: LoadedModel,
    items: Sequence[PostEditedItem],
    out_dir: Path,
    *,
    batch_size: int = 16,
    max_new_tokens: int = 160,
    src_lang: str = "en",
    tgt_lang: str = "es",
    label: str = "post-edits",
) -> dict:
    """Translate the sources of ``items`` and score them against the post-edits; write ``out_dir/outputs.jsonl``
    and ``metrics.json`` (one row per post-edited item, ``id`` = the item id).

    Returns:
        The metrics of :func:`medtune.eval.translation.evaluate_translation` (chrf, bleu, ter, n, ...).
    Raises:
        MedtuneError: no item carries a post-edit.
    """
    edited = post_edited(items)
    if not edited:
        raise MedtuneError(
            f"None of the {len(items)} held-out judged items carries a post-edit, so the model cannot be compared "
            "with post-edits; judge with post-edits (the reviewer page's edit box) or raise feedback.heldout."
        )
    pairs = [Pair(i.source, str(i.post_edit).strip(), id=i.item_id) for i in edited]
    return evaluate_translation(
        loaded,
        pairs,
        out_dir,
        src_lang=src_lang,
        tgt_lang=tgt_lang,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        label=label,
    )
