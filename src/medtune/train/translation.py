"""The translation training stage: pairs in, a trained model folder out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from medtune.data.parallel import Pair
from medtune.models.adapters import attach_lora
from medtune.models.loading import MODEL_INFO_FILE, load_model
from medtune.recipes.loader import recipe_to_yaml
from medtune.recipes.schema import Recipe
from medtune.train.batching import encode_translation_pairs
from medtune.train.loop import LoopConfig, TrainResult, train_loop


@dataclass
class TrainedModel:
    path: Path
    result: TrainResult
    trainable_params: int
    total_params: int


def train_translation(
    recipe: Recipe, train_pairs: list[Pair], dev_pairs: list[Pair], resume: bool = False, log=print
) -> TrainedModel:
    """Fine-tune ``recipe.model`` on translation pairs and save it to ``recipe.output_dir``.

    The folder receives the adapter (or full weights), the tokenizer, ``recipe.yaml``,
    ``metrics.json`` and ``medtune_model.json``; it can be passed anywhere a model is expected.
    """
    cfg = recipe.train
    torch.manual_seed(recipe.seed)
    loaded = load_model(recipe.model, dtype=cfg.dtype)
    model, tokenizer = loaded.model, loaded.tokenizer
    if cfg.method == "lora":
        model = attach_lora(model, cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.target_modules)
    else:
        model.requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    log(f"Training {cfg.method}: {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)")

    encode = dict(
        seq2seq=loaded.is_seq2seq,
        max_length=cfg.max_length,
        src_lang=recipe.data.src_lang,
        tgt_lang=recipe.data.tgt_lang,
    )
    train_ex = encode_translation_pairs(tokenizer, train_pairs, **encode)
    dev_ex = encode_translation_pairs(tokenizer, dev_pairs, **encode)
    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loop_cfg = LoopConfig(
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
    result = train_loop(
        model, train_ex, dev_ex, loop_cfg, tokenizer.pad_token_id, loaded.is_seq2seq, out / "checkpoints", resume, log
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {
        "base_model": loaded.ref.base_name,
        "task": recipe.task,
        "method": cfg.method,
        "adapter": cfg.method == "lora",
        "src_lang": recipe.data.src_lang,
        "tgt_lang": recipe.data.tgt_lang,
        "seq2seq": loaded.is_seq2seq,
    }
    (out / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    (out / "recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
    metrics = {
        **result.to_dict(),
        "trainable_params": trainable,
        "total_params": total,
        "train_examples": len(train_ex),
        "dev_examples": len(dev_ex),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return TrainedModel(out, result, trainable, total)
