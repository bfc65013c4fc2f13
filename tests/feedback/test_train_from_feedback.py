"""Batch training from judged items (kto, dpo, reward-weighted) on tiny models: a few steps, and the held-out
post-edit preference margin moves the way the feedback says.

The feedback is made so that its lesson is clear even to a tiny random model: half the machine translations
carry the same junk ending (" xq xq xq"), scored 0.1 and post-edited to the clean reference; the clean
ones are scored 0.9. The held-out items have the junk ending too, so a model that learnt anything from the
feedback prefers their post-edits more than before.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from demo_rows import demo_records

from medtune.errors import MedtuneError
from medtune.feedback.heldout import evaluate_post_edit_margin, post_edit_preference_pairs
from medtune.feedback.train import post_edit_pairs, train_from_feedback
from medtune.feedback.training_data import ItemFeedback
from medtune.recipes.schema import Recipe

JUNK = " xq xq xq"
LORA = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"]}
MARIAN_LORA = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]}


def _items(start: int, n: int) -> list[ItemFeedback]:
    out = []
    for i, record in enumerate(demo_records(start + n)[start:]):
        junk = i % 2 == 1
        translation = record["es"] + (JUNK if junk else "")
        score = 0.1 if junk else 0.9
        post_edit = record["es"] if junk else None
        out.append(
            ItemFeedback(
                f"i{start + i:03d}", record["en"], translation, record["es"], score, post_edit, 1, (score,), True
            )
        )
    return out


def _recipe(model: Path, objective: str, method: str = "lora", lora: dict = LORA, **feedback) -> Recipe:
    train = dict(
        method=method,
        max_steps=8,
        batch_size=4,
        lr=2e-3 if method == "lora" else 5e-4,
        warmup_ratio=0.0,
        dtype="float32",
        gradient_checkpointing=False,
        save_every=100,
        eval_every=100,
        beta=0.5,
        lora=lora,
    )
    return Recipe(
        name="fb",
        task="translation",
        pipeline="feedback_rlhf",
        model=str(model),
        device="cpu",
        data={"train": "unused"},
        train=train,
        feedback={"objective": objective, **feedback},
    )


def _quiet(_message: str) -> None:
    pass


def _margin(recipe: Recipe, trained: Path, heldout: list[ItemFeedback], out: Path) -> dict:
    from medtune.models.loading import load_model

    def load(name: str):
        return lambda: load_model(name, dtype="float32", device="cpu", log=_quiet)

    return evaluate_post_edit_margin(
        {"before": load(recipe.model), "after": load(str(trained))}, heldout, out, log=_quiet
    )


@pytest.mark.parametrize(
    ("objective", "method", "kind"),
    [("kto", "lora", "gemma"), ("dpo", "lora", "gemma"), ("reward-weighted", "lora", "gemma"),
     ("dpo", "full", "gemma"), ("reward-weighted", "full", "marian"), ("dpo", "lora", "marian")],
)  # fmt: skip
def test_training_from_feedback_raises_the_held_out_post_edit_margin(
    tmp_path, tiny_gemma_dir, tiny_marian_dir, objective, method, kind
):
    model = tiny_gemma_dir if kind == "gemma" else tiny_marian_dir
    recipe = _recipe(model, objective, method, LORA if kind == "gemma" else MARIAN_LORA, kl_coef=0.05)
    train, heldout = _items(0, 16), _items(16, 8)
    trained = train_from_feedback(recipe, train, recipe.model, str(tmp_path / "run" / "model"), log=_quiet)
    metrics = json.loads((trained.path / "metrics.json").read_text(encoding="utf-8"))
    info = json.loads((trained.path / "medtune_model.json").read_text(encoding="utf-8"))
    assert metrics["steps"] == 8 and metrics["objective"] == f"feedback-{objective}"
    assert metrics["training_items"] == (8 if objective == "dpo" else 16)  # dpo: only the post-edited items
    assert info["objective"] == f"feedback-{objective}" and info["method"] == method
    result = _margin(recipe, trained.path, heldout, tmp_path / "margin")
    assert result["n"] == 4  # the held-out items with a differing post-edit
    assert result["after"]["mean_margin"] > result["before"]["mean_margin"]
    assert result["delta"]["value"] == pytest.approx(result["after"]["mean_margin"] - result["before"]["mean_margin"])
    assert result["delta"]["ci_low"] <= result["delta"]["value"] <= result["delta"]["ci_high"]


def test_mean_of_several_reviewers_decides_kto_desirability(tmp_path, tiny_gemma_dir):
    from medtune.feedback.train import feedback_training_items
    from medtune.train.setup import prepare_trainable_model

    recipe = _recipe(tiny_gemma_dir, "kto", threshold=0.5)
    records = demo_records(3)
    items = [
        ItemFeedback("a", records[0]["en"], records[0]["es"], None, 0.55, None, 2, (0.9, 0.2), False),  # mean 0.55
        ItemFeedback("b", records[1]["en"], records[1]["es"], None, 0.45, None, 2, (0.8, 0.1), False),  # mean 0.45
        ItemFeedback("c", records[2]["en"], records[2]["es"], None, 0.5, None, 1, (0.5,), False),  # at the threshold
    ]
    trainable = prepare_trainable_model(recipe, _quiet)
    examples, objective = feedback_training_items(recipe, trainable, items, tmp_path, _quiet)
    assert [e.desirable for e in examples] == [True, False, True]
    assert objective.name == "kto" and objective.beta == 0.5

    recipe = _recipe(tiny_gemma_dir, "reward-weighted", baseline=0.4, kl_coef=0.2)
    examples, objective = feedback_training_items(recipe, trainable, items, tmp_path, _quiet)
    assert [e.advantage for e in examples] == pytest.approx([0.15, 0.05, 0.1])
    assert objective.kl_coef == 0.2 and all(e.ref_logp is None for e in examples)  # LoRA: adapter disabled


def test_refusals_name_the_key(tmp_path, tiny_gemma_dir):
    scores_only = [i for i in _items(0, 8) if i.post_edit is None]
    assert not post_edit_pairs(scores_only) and not post_edit_preference_pairs(scores_only)
    with pytest.raises(MedtuneError, match="feedback.objective=dpo .* none of the 4 training items"):
        train_from_feedback(
            _recipe(tiny_gemma_dir, "dpo"), scores_only, str(tiny_gemma_dir), str(tmp_path / "m"), log=_quiet
        )
    with pytest.raises(MedtuneError, match="feedback.objective=kto with train.method=full"):
        train_from_feedback(
            _recipe(tiny_gemma_dir, "kto", "full"), _items(0, 8), str(tiny_gemma_dir), str(tmp_path / "m"), log=_quiet
        )
    with pytest.raises(MedtuneError, match="No judged items"):
        train_from_feedback(_recipe(tiny_gemma_dir, "kto"), [], str(tiny_gemma_dir), str(tmp_path / "m"), log=_quiet)
