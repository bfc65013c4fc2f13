"""LoRA adapters: attach for training, merge for export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.models.loading import MODEL_INFO_FILE, load_model, read_model_info
from medtune.models.quantization import dequantize_for_merge, prequantized_method


def attach_lora(model, r: int, alpha: int, dropout: float, target_modules: list[str]):
    """Wrap a model with fresh LoRA adapters on the named modules (others stay frozen)."""
    from peft import LoraConfig, TaskType, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [m for m in target_modules if m in present]
    if not targets:
        raise MedtuneError(
            f"None of train.lora.target_modules {target_modules} exist in this model. "
            f"Linear layer names include: {sorted(n for n in present if 'proj' in n or n.startswith('fc'))[:12]}."
        )
    task = TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.CAUSAL_LM
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type=task)
    return get_peft_model(model, config)


def export_merged(model_dir: Path, out: Path, log=print) -> Path:
    """Write a standalone model (adapter merged into the base) that loads with ``from_pretrained``.

    Raises:
        MedtuneError: when ``model_dir`` is not a medtune model folder or ``out`` is not empty.
    """
    if out.exists() and any(out.iterdir()):
        raise MedtuneError(f"{out} exists and is not empty; choose another --out folder.")
    info = read_model_info(model_dir)
    if info is None:
        raise MedtuneError(f"{model_dir} is not a medtune training output (no {MODEL_INFO_FILE}).")
    if info.get("quantization", "none") != "none":
        log(
            f"The adapter was trained on a {info['quantization']} base: merging it into the full-precision "
            "(dequantised) base weights."
        )
    loaded = load_model(str(model_dir))
    model = loaded.model
    if hasattr(model, "base_model") and prequantized_method(model.config):
        model.base_model.model = dequantize_for_merge(model.base_model.model, log)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)
    merged_info = {**info, "merged": True, "adapter": False}
    (tmp / MODEL_INFO_FILE).write_text(json.dumps(merged_info, indent=2), encoding="utf-8")
    for extra in ("README.md", "recipe.yaml", "metrics.json"):
        if (model_dir / extra).is_file():
            shutil.copy2(model_dir / extra, tmp / extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out
