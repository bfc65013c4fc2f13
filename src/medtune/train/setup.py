"""What every training method shares: making the model trainable, the loop settings, saving the result.

A method module (translation, sft, pretrain) encodes its data into ``Example``s and calls these
three steps around :func:`medtune.train.loop.train_loop`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medtune.models.adapters import attach_lora
from medtune.models.loading import MODEL_INFO_FILE, LoadedModel, load_model
from medtune.recipes.loader import recipe_to_yaml
from medtune.recipes.schema import Recipe
from medtune.train.loop import LoopConfig, TrainResult, train_loop


@dataclass
class TrainableModel:
    loaded: LoadedModel
    model: Any  # the (PEFT-wrapped) model whose trainable parameters the loop updates
    trainable_params: int
    total_params: int


@dataclass
class TrainedModel:
    path: Path
    result: TrainResult
    trainable_params: int
    total_params: int


def prepare_trainable_model(recipe: Recipe, log=print) -> TrainableModel:
    """Load ``recipe.model`` and make it trainable: LoRA adapters or all weights, plus checkpointing."""
    cfg = recipe.train
    torch.manual_seed(recipe.seed)
    loaded = load_model(recipe.model, dtype=cfg.dtype, quantization=cfg.quantization, log=log)
    model = loaded.model
    if cfg.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        # QLoRA: norms in float32 and a frozen 4-bit base ready for adapters (PEFT's own preparation).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if cfg.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
        # Recompute each layer's activations in the backward pass: ~1 GB less at ~20% more time.
        if hasattr(model, "activation_checkpointing_enable"):  # the transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.method == "lora":
        model = attach_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    else:
        model.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"Training {cfg.method}: {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)")
    return TrainableModel(loaded, model, trainable, total)


def loop_config(recipe: Recipe) -> LoopConfig:
    """The loop settings of a recipe's ``train`` section."""
    cfg = recipe.train
    return LoopConfig(
        batch_size=cfg.batch_size,
        grad_accum=cfg.grad_accum,
        lr=cfg.lr,
        seed=recipe.seed,
        epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_ratio=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        eval_every=cfg.eval_every,
        save_every=cfg.save_every,
    )


def fit(recipe: Recipe, trainable: TrainableModel, train: list, dev: list, resume: bool, log=print) -> TrainResult:
    """Run the training loop on encoded examples; checkpoints go to ``<output_dir>/checkpoints``."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = trainable.loaded
    return train_loop(
        trainable.model,
        train,
        dev,
        loop_config(recipe),
        loaded.tokenizer.pad_token_id,
        loaded.is_seq2seq,
        out / "checkpoints",
        resume,
        log,
    )


def save_trained_model(
    recipe: Recipe, trainable: TrainableModel, result: TrainResult, info: dict, metrics: dict
) -> TrainedModel:
    """Write adapter (or weights), tokenizer (with its chat template), recipe, metrics and model info.

    The folder can then be given anywhere a model is expected.
    """
    out = Path(recipe.output_dir)
    loaded, cfg = trainable.loaded, recipe.train
    trainable.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    model_info = {
        "base_model": loaded.ref.base_name,
        "task": recipe.task,
        "method": cfg.method,
        "adapter": cfg.method == "lora",
        "quantization": cfg.quantization,
        "seq2seq": loaded.is_seq2seq,
        **info,
    }
    (out / MODEL_INFO_FILE).write_text(json.dumps(model_info, indent=2), encoding="utf-8")
    (out / "recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
    all_metrics = {
        **result.to_dict(),
        "trainable_params": trainable.trainable_params,
        "total_params": trainable.total_params,
        **metrics,
    }
    (out / "metrics.json").write_text(json.dumps(all_metrics, indent=2), encoding="utf-8")
    return TrainedModel(out, result, trainable.trainable_params, trainable.total_params)
