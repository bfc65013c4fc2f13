"""LoRA adapters: attach for training; export a trained model merged, or as it is when its base is on the hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F

from medtune.errors import MedtuneError
from medtune.models.loading import MODEL_INFO_FILE, load_model, read_model_info
from medtune.models.publish import MODEL_CARD_FILE, hub_model_id, model_folder_files
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
    # autocast_adapter_dtype: adapters stay float32 over a bf16 base (mixed precision, see train/setup.py).
    return get_peft_model(model, config, autocast_adapter_dtype=True)


class _InputDtypeLinear(torch.nn.Linear):
    """A LoRA factor whose (float32) weight is cast to its input's dtype for the product only.

    Gradients flow back through the cast, so the weight, its gradient and the optimizer state stay
    float32 while the product runs in the base's bfloat16: autocast limited to the adapters.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


def compute_adapters_in_input_dtype(model) -> int:
    """Run every LoRA product of ``model`` in the dtype of the activations it receives; returns how many
    adapted layers were switched.

    By default PEFT casts each adapted layer's input up to the float32 adapter weights, so over a bf16
    base every one of them adds a float32 copy of its input, a float32 product and a float32 sum. On the
    translate-en-es setup (2-core AMX CPU, batch 8) those casts took a quarter of each step: with the
    products in bf16 a step took 0.74x the time and peak memory fell by 1 GB, the adapter weights and
    optimizer state still float32. The loss and gradients equal, bit for bit, PEFT's own path under
    torch.autocast(bf16) (tests/models/test_adapter_compute.py), without autocast's per-call casts.
    """
    from peft.tuners.lora import LoraLayer

    switched = 0
    for module in model.modules():
        if not isinstance(module, LoraLayer) or getattr(module, "lora_variant", None):
            continue  # DoRA and other variants have their own forward: left as PEFT runs them
        factors = [*module.lora_A.values(), *module.lora_B.values()]
        if not factors or any(type(f) not in (torch.nn.Linear, _InputDtypeLinear) for f in factors):
            continue  # embedding / convolution adapters keep PEFT's casts
        for linear in factors:
            linear.__class__ = _InputDtypeLinear
        module.cast_input_dtype_enabled = False
        switched += 1
    return switched


def trained_model_info(model_dir: Path) -> dict:
    """The ``medtune_model.json`` of a training output.

    Raises:
        MedtuneError: ``model_dir`` is not a medtune training output.
    """
    info = read_model_info(model_dir)
    if info is None:
        raise MedtuneError(f"{model_dir} is not a medtune training output (no {MODEL_INFO_FILE}).")
    return info


def check_adapter_portable(model_dir: Path) -> dict:
    """The model's info, if the folder is usable on its own: a full fine-tune, or an adapter on a hub base.

    Raises:
        MedtuneError: an adapter whose base is the embedded model or a local folder (it loads nowhere
            else), saying to add ``--merge``.
    """
    info = trained_model_info(model_dir)
    base = str(info.get("base_model", ""))
    if info.get("adapter") and hub_model_id(base) is None:
        raise MedtuneError(
            f"{model_dir} holds a LoRA adapter on '{base}', which is not a Hugging Face model id (the embedded "
            "model or a local folder), so the adapter alone would not load anywhere else. Add --merge to "
            "export the adapter merged into its base as a standalone model."
        )
    return info


def export_as_is(model_dir: Path, out: Path) -> Path:
    """Copy a trained model folder to ``out`` without merging: the adapter (or full fine-tune) and its card.

    Checkpoints and temporary files stay behind. Raises:
        MedtuneError: an adapter on a base that is not a hub id (see :func:`check_adapter_portable`),
            or ``out`` not empty.
    """
    _check_out_is_free(out)
    check_adapter_portable(model_dir)
    tmp = _partial_folder(out)
    for path in model_folder_files(model_dir):
        target = tmp / path.relative_to(model_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return _move_into_place(tmp, out)


def export_merged(model_dir: Path, out: Path, log=print) -> Path:
    """Write a standalone model (adapter merged into the base) that loads with ``from_pretrained``.

    The model card is copied with its hub metadata switched to ``library_name: transformers``.

    Raises:
        MedtuneError: when ``model_dir`` is not a medtune model folder or ``out`` is not empty.
    """
    _check_out_is_free(out)
    info = trained_model_info(model_dir)
    if info.get("quantization", "none") != "none":
        log(
            f"The adapter was trained on a {info['quantization']} base: merging it into the full-precision "
            "(dequantised) base weights."
        )
    loaded = load_model(str(model_dir), dtype="float32", device="cpu")  # merge at full precision
    model = loaded.model
    if hasattr(model, "base_model") and prequantized_method(model.config):
        model.base_model.model = dequantize_for_merge(model.base_model.model, log)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = _partial_folder(out)
    model.save_pretrained(tmp, safe_serialization=True)
    loaded.tokenizer.save_pretrained(tmp)
    merged_info = {**info, "merged": True, "adapter": False}
    (tmp / MODEL_INFO_FILE).write_text(json.dumps(merged_info, indent=2), encoding="utf-8")
    for extra in (MODEL_CARD_FILE, "recipe.yaml", "metrics.json"):
        if (model_dir / extra).is_file():
            shutil.copy2(model_dir / extra, tmp / extra)
    if (tmp / MODEL_CARD_FILE).is_file():
        _card_for_merged_model(tmp / MODEL_CARD_FILE)
    return _move_into_place(tmp, out)


def _card_for_merged_model(card_path: Path) -> None:
    """Switch the card's hub metadata from a PEFT adapter to a plain transformers model."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(card_path)
    card.data.library_name = "transformers"
    card.data.tags = [tag for tag in card.data.tags or [] if tag != "lora"] or None
    card.save(card_path)


def _check_out_is_free(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MedtuneError(f"{out} exists and is not empty (or is not a folder); choose another --out folder.")


PARTIAL_MARKER = ".medtune-partial-export"


def _partial_folder(out: Path) -> Path:
    """The folder an export is written to before it is renamed to ``out`` (so ``out`` is never half-written).

    A leftover of an interrupted export (it holds medtune's marker) is replaced; any other folder of
    that name is the user's and is refused.
    """
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        if not (tmp / PARTIAL_MARKER).is_file():
            raise MedtuneError(f"{tmp} exists and was not written by medtune; move it away or choose another --out.")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / PARTIAL_MARKER).touch()
    return tmp


def _move_into_place(tmp: Path, out: Path) -> Path:
    (tmp / PARTIAL_MARKER).unlink()
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def unwrap_model(model):
    """The bare transformers model under a PEFT wrapper (its adapters stay active)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
