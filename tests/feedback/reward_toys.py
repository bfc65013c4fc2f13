"""Toy judged items with a learnable signal, and a small reward recipe, shared by the reward-model tests."""

from __future__ import annotations

from pathlib import Path

from demo_rows import demo_records

from medtune.feedback.training_data import ItemFeedback
from medtune.recipes.schema import Recipe

MARKER = " excelente"


def toy_items(n: int, start: int = 0) -> list[ItemFeedback]:
    """Items whose score is set by how many times a marker word ends the translation (0-3 times)."""
    items = []
    for k, record in enumerate(demo_records(start + n)[start:]):
        marks = (start + k) % 4
        score = 0.1 + 0.3 * marks
        items.append(
            ItemFeedback(
                item_id=f"item-{start + k:04d}",
                source=record["en"],
                translation=record["es"] + MARKER * marks,
                reference=record["es"],
                score=score,
                post_edit=None,
                judgments=1,
                scores=(score,),
                simulated=True,
            )
        )
    return items


def toy_recipe(model: Path, **train) -> Recipe:
    settings = {"dtype": "float32", "method": "lora", "max_steps": 30, "lr": 1e-2, "batch_size": 8, "eval_every": 100}
    return Recipe(
        name="reward-test",
        task="translation",
        pipeline="feedback_reward",
        model=str(model),
        device="cpu",
        data={"train": "feedback"},
        train=settings | train,
    )
