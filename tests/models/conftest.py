"""Fixtures of the model tests: a real (tiny) medtune training output."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.pipeline import train_recipe
from medtune.recipes.loader import validate_recipe


@pytest.fixture(scope="session")
def trained_output(tiny_gemma_dir, tmp_path_factory) -> Path:
    """A medtune training output (LoRA adapter) from a 4-step train_recipe on the demo corpus."""
    run_dir = tmp_path_factory.mktemp("train-run")
    recipe = validate_recipe(
        {
            "name": "tiny-train",
            "task": "translation",
            "model": str(tiny_gemma_dir),
            "run_dir": str(run_dir),
            "data": {"train": "demo:medical_en_es.jsonl", "test_size": 0.1, "dev_size": 0.02},
            # a high lr so the adapter visibly changes the model (the export test needs that)
            "train": {"max_steps": 4, "batch_size": 4, "lr": 3e-2, "max_length": 96, "lora": {"r": 4, "alpha": 8}},
            "eval": {"few_shot": 0},
        }
    )
    return train_recipe(recipe, log=lambda _: None)
