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

from medtune.models.adapters import attach_lora, compute_adapters_in_input_dtype
from medtune.models.device import dtype_name, resolve_device, resolve_dtype, runtime_info
from medtune.models.loading import MODEL_INFO_FILE, LoadedModel, load_model
from medtune.recipes.loader import recipe_to_yaml
from medtune.recipes.schema import Recipe
from medtune.sharding import main_process_first
from medtune.train.loop import LoopConfig, TrainResult, train_loop
from medtune.train.objectives import Objective, SFTObjective


@dataclass
class TrainableModel:
    loaded: LoadedModel
    model: Any  # the (PEFT-wrapped) model whose trainable parameters the loop updates
    trainable_params: int
    total_params: int
    compute_dtype: torch.dtype = torch.float32  # the precision matrix products run in
    autocast_dtype: torch.dtype | None = None  # set when float32 weights train under torch.autocast

    def precision_info(self) -> dict[str, str]:
        """``device``, ``device_name``, ``dtype`` (compute) and how mixed precision is done, for metrics.json."""
        if self.compute_dtype == torch.float32:
            how = "float32 throughout"
        elif self.autocast_dtype is not None:
            how = f"float32 master weights, {dtype_name(self.autocast_dtype)} autocast"
        else:
            how = f"{dtype_name(self.compute_dtype)} frozen base, float32 LoRA weights, optimizer state and loss"
        return {**runtime_info(self.loaded.device, self.compute_dtype), "mixed_precision": how}


def training_precision(recipe: Recipe, log=print) -> tuple[torch.device, torch.dtype, torch.dtype | None]:
    """(device, compute dtype, autocast dtype or None) for a recipe's ``device`` and ``train.dtype``.

    LoRA in bf16 loads the frozen base in bf16 and keeps the adapters in float32. Why not autocast:
    on the translate-en-es setup (2-core AMX CPU, batch 8, 5 steps) the bf16 base trained at 1.42x
    float32's tokens/s, fp32 weights under torch.autocast at 1.06x (it re-casts the frozen weights at
    every call), both ending within 0.3% of float32's loss (bench_dtype.py --compare-autocast).
    Full fine-tuning must keep float32 master weights, so it trains under autocast instead.

    Raises:
        MedtuneError: a device this machine lacks, or bfloat16 asked for where the hardware has none.
    """
    cfg = recipe.train
    device = resolve_device(recipe.device, "device")
    compute = resolve_dtype(cfg.dtype, device, "train.dtype", training=True, log=log)
    if cfg.quantization == "4bit":
        return device, compute, None  # QLoRA: the 4-bit base computes in bf16 (bnb_4bit_compute_dtype)
    autocast = compute if cfg.method == "full" and compute != torch.float32 else None
    return device, compute, autocast


@dataclass
class TrainedModel:
    path: Path
    result: TrainResult
    trainable_params: int
    total_params: int


def prepare_trainable_model(recipe: Recipe, log=print, model_name: str | None = None) -> TrainableModel:
    """Load ``recipe.model`` (or ``model_name``: e.g. a merged SFT model that preference training starts
    from) and make it trainable: fresh LoRA adapters or all weights, plus checkpointing."""
    cfg = recipe.train
    device, compute, autocast = training_precision(recipe, log)
    torch.manual_seed(recipe.seed)
    weights = torch.float32 if autocast is not None else compute
    loaded = load_model(
        model_name or recipe.model,
        dtype=dtype_name(weights),
        device=str(device),
        quantization=cfg.quantization,
        log=log,
    )
    model = loaded.model
    if cfg.quantization == "4bit":
        from peft import prepare_model_for_kbit_training

        # QLoRA: norms in float32 and a frozen 4-bit base ready for adapters (PEFT's own preparation).
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if cfg.gradient_checkpointing and getattr(model, "supports_gradient_checkpointing", False):
        # Recompute each layer's activations in the backward pass: ~1 GB less at ~25% more time (bf16 too:
        # without it translate-en-es peaked at 5.4 GB, over the 4 GB a laptop-class run is held to).
        if hasattr(model, "activation_checkpointing_enable"):  # the transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.method == "lora":
        model = attach_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
        if compute != torch.float32 and cfg.quantization == "none":
            compute_adapters_in_input_dtype(model)  # float32 adapters, products in the base's dtype
    else:
        model.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"Training {cfg.method}: {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)")
    result = TrainableModel(loaded, model, trainable, total, compute, autocast)
    info = result.precision_info()
    log(f"Device: {info['device']} ({info['device_name']}); precision: {info['mixed_precision']}.")
    return result


def loop_config(recipe: Recipe, autocast_dtype: torch.dtype | None = None) -> LoopConfig:
    """The loop settings of a recipe's ``train`` section (``autocast_dtype``: see :func:`training_precision`)."""
    cfg = recipe.train
    return LoopConfig(
        autocast_dtype=autocast_dtype,
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


def fit(
    recipe: Recipe,
    trainable: TrainableModel,
    train: list,
    dev: list,
    resume: bool,
    log=print,
    objective: Objective = SFTObjective(),
) -> TrainResult:
    """Run the training loop on encoded items with ``objective``; checkpoints go to ``<output_dir>/checkpoints``."""
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded = trainable.loaded
    return train_loop(
        trainable.model,
        train,
        dev,
        loop_config(recipe, trainable.autocast_dtype),
        loaded.tokenizer.pad_token_id,
        loaded.is_seq2seq,
        out / "checkpoints",
        resume,
        log,
        objective,
    )


def save_trained_model(
    recipe: Recipe, trainable: TrainableModel, result: TrainResult, info: dict, metrics: dict
) -> TrainedModel:
    """Write adapter (or weights), tokenizer (with its chat template), recipe, metrics and model info.

    The folder can then be given anywhere a model is expected. Under several processes the main one
    writes it while the others wait, so that every process returns once the folder is complete.
    """
    out = Path(recipe.output_dir)
    with main_process_first() as main:
        if main:
            _write_trained_model(out, recipe, trainable, result, info, metrics)
    return TrainedModel(out, result, trainable.trainable_params, trainable.total_params)


def _write_trained_model(
    out: Path, recipe: Recipe, trainable: TrainableModel, result: TrainResult, info: dict, metrics: dict
) -> None:
    loaded, cfg = trainable.loaded, recipe.train
    trainable.model.save_pretrained(out, safe_serialization=True)
    loaded.tokenizer.save_pretrained(out)
    model_info = {
        "base_model": _portable_base_name(_adapter_base(loaded) if cfg.method == "lora" else loaded.ref.base_name),
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
        **trainable.precision_info(),
        **metrics,
    }
    (out / "metrics.json").write_text(json.dumps(all_metrics, indent=2), encoding="utf-8")


def _adapter_base(loaded: LoadedModel) -> str:
    """What a new adapter sits on: a medtune full-model folder (a full fine-tune, a merged SFT model) is
    itself the base, not the base it was made from (which its own info names)."""
    ref = loaded.ref
    return ref.base_path if ref.info is not None and ref.adapter_path is None else ref.base_name


def _portable_base_name(name: str) -> str:
    """A local base folder is recorded by its absolute path, so the adapter loads from any working folder."""
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name
