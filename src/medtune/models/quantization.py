"""Quantised bases: QLoRA (4-bit NF4 through bitsandbytes) and pre-quantised GPTQ checkpoints.

Both need optional libraries and, for bitsandbytes, a CUDA GPU. We check up front and say exactly
what is missing instead of letting a deep import error surface mid-run.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from medtune.errors import MedtuneError

GPTQ_BACKENDS = ("gptqmodel", "auto_gptq")


def bnb_4bit_config(device: Any = None) -> Any:
    """The QLoRA quantisation config (NF4, double quantisation, bfloat16 compute).

    Args:
        device: the ``torch.device`` the model will be placed on (must be a CUDA GPU), or ``None``.
    Raises:
        MedtuneError: without a CUDA GPU (or with another device chosen), or without ``bitsandbytes``.
    """
    import torch

    if not torch.cuda.is_available():
        raise MedtuneError(
            "train.quantization=4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit NF4 kernels do not run "
            "on this machine's CPU. Use train.quantization=none (LoRA on the full-precision base) here."
        )
    if device is not None and torch.device(device).type != "cuda":
        raise MedtuneError(
            f"train.quantization=4bit (QLoRA) needs the model on a CUDA GPU, but device={device} was chosen. "
            "Set device=auto or device=cuda[:N], or train.quantization=none."
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MedtuneError(
            "train.quantization=4bit (QLoRA) needs the bitsandbytes package: pip install 'medtune[qlora]'."
        )
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def prequantized_method(config: Any) -> str | None:
    """The quantisation method a checkpoint was saved with (``gptq``, ``bitsandbytes``...), or ``None``."""
    qc = getattr(config, "quantization_config", None)
    if qc is None:
        return None
    method = qc.get("quant_method") if isinstance(qc, dict) else getattr(qc, "quant_method", None)
    return str(getattr(method, "value", method)) if method is not None else "unknown"


def check_prequantized(config: Any, name: str) -> None:
    """Refuse, with the fix, a pre-quantised checkpoint whose backend is not installed.

    Raises:
        MedtuneError: a GPTQ model without ``gptqmodel``/``auto_gptq``, or a bitsandbytes one without CUDA.
    """
    method = prequantized_method(config)
    if method == "gptq" and not any(importlib.util.find_spec(b) for b in GPTQ_BACKENDS):
        raise MedtuneError(
            f"Model '{name}' is GPTQ-quantised; loading it needs the optional GPTQ backend: "
            "pip install 'medtune[gptq]' (installs gptqmodel and optimum)."
        )
    if method == "bitsandbytes":
        bnb_4bit_config()  # same requirements as QLoRA


def dequantize_for_merge(model: Any, log=print) -> Any:
    """Return a full-precision copy of a quantised base so that an adapter can be merged into it.

    Raises:
        MedtuneError: when the quantisation backend cannot dequantise.
    """
    method = prequantized_method(model.config)
    if method is None:
        return model
    log(f"The base model is {method}-quantised: dequantising it before merging the adapter.")
    try:
        return model.dequantize()
    except (AttributeError, NotImplementedError, ValueError) as exc:
        raise MedtuneError(
            f"Cannot dequantise this {method} base to merge the adapter ({exc}). Merge into the original "
            "full-precision checkpoint instead: load it as the base model and export again."
        ) from None
