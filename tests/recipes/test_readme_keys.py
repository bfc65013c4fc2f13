"""The README documents every recipe key and every bundled recipe."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from medtune.recipes.loader import bundled_recipes
from medtune.recipes.schema import Recipe

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def recipe_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += recipe_keys(field.annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_every_recipe_key_is_in_the_readme_table():
    keys = recipe_keys(Recipe)
    assert len(keys) > 50
    missing = [k for k in keys if f"| `{k}` |" not in README]
    assert not missing


def test_every_bundled_recipe_is_in_the_readme():
    assert set(bundled_recipes()) == {
        "translate-en-es",
        "chat-sft",
        "qa-sft",
        "dapt",
        "qa-rlaif",
        "translate-rlaif",
        "feedback-rlhf",
        "feedback-reward",
        "full-training",
    }
    assert all(f"`{name}`" in README for name in bundled_recipes())
