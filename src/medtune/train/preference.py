"""Preference training (DPO, KTO): preference pairs in, a trained model folder that knows its reference out.

The reference model costs no second copy of the weights:

* LoRA: training starts from the SFT model with a *fresh* adapter, so disabling the adapter gives
  exactly the SFT model. When ``start_model`` is a medtune adapter folder (base + SFT adapter), the
  adapter is first merged into its base, once, into ``<output_dir>/../sft_merged`` (re-used while it
  is complete and merged from the same adapter). Disabling an adapter that already holds the SFT
  training would give the base model instead: the mistake this avoids.
* Full fine-tuning: the reference log-probabilities of every pair are computed once, before the first
  step, into ``<output_dir>/../ref_logps.pt``, keyed by a hash of the encoded pairs and of the
  reference weights; a re-run with the same key re-uses them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import torch

from medtune.data.preference import PreferencePair
from medtune.errors import MedtuneError
from medtune.models.loading import read_model_info, resolve_model
from medtune.recipes.schema import Recipe
from medtune.runs import is_main_process
from medtune.sharding import main_process_first
from medtune.train.objectives import (
    KTOExample,
    PairExample,
    disable_dropout,
    reference_logps,
    with_reference_logps,
)
from medtune.train.preference_data import PairEncoding, encode_preference_pairs
from medtune.train.setup import TrainableModel, TrainedModel, fit, prepare_trainable_model, save_trained_model

MERGED_FOLDER = "sft_merged"
MERGED_SOURCE_FILE = "merged_from.json"  # marks a merged folder as medtune's and names what was merged
REFERENCE_CACHE = "ref_logps.pt"
PREFERENCE_OBJECTIVES = ("dpo", "kto")


def train_preference(
    recipe: Recipe,
    train_pairs: list[PreferencePair],
    dev_pairs: list[PreferencePair],
    start_model: str,
    output_dir: str,
    resume: bool = False,
    log=print,
) -> TrainedModel:
    """Train ``start_model`` on preference pairs with ``recipe.train.objective`` (dpo or kto) into ``output_dir``.

    Args:
        recipe: the recipe (``train`` section: objective, beta, sft_weight, KTO weights, method, schedule).
        train_pairs, dev_pairs: validated pairs (dev: the held-out loss and reward margins while training).
        start_model: the SFT output folder (adapter + base, or a full model) or a base model name; it is
            the reference model.
        output_dir: the folder for the trained model (its parent also holds the merged SFT model or the
            reference log-prob cache).
        resume: continue from the checkpoint in ``output_dir`` when there is one.
    Returns:
        The saved model; its ``medtune_model.json`` records the objective, beta and the reference model.
    Raises:
        MedtuneError: ``train.objective`` is not dpo/kto, KTO with full fine-tuning (its reference point
            needs the reference model on mismatched pairs built per batch), no pair left after encoding,
            or a merge folder medtune did not write.
    """
    cfg = recipe.train
    if cfg.objective not in PREFERENCE_OBJECTIVES:
        raise MedtuneError(
            f"train.objective is {cfg.objective!r}; preference training needs dpo or kto (--set train.objective=dpo)."
        )
    if cfg.objective == "kto" and cfg.method == "full":
        raise MedtuneError(
            "train.objective=kto with train.method=full is not supported: KTO's reference point compares each "
            "answer with another prompt's, pairs formed per batch, so the reference model must run during "
            "training, and full fine-tuning keeps no reference copy. Use train.method=lora (the disabled adapter "
            "is the reference), or train.objective=dpo."
        )
    recipe = recipe.model_copy(update={"output_dir": str(output_dir)})
    run_dir = Path(output_dir).parent
    reference = lora_reference(start_model, run_dir, log) if cfg.method == "lora" else start_model
    trainable = prepare_trainable_model(recipe, log, model_name=reference)
    loaded = trainable.loaded
    how = PairEncoding(
        recipe.task,
        loaded.is_seq2seq,
        cfg.max_length,
        recipe.data.src_lang,
        recipe.data.tgt_lang,
        recipe.data.system_prompt if recipe.task != "translation" else None,
    )
    train_ex, _, train_report = encode_preference_pairs(loaded.tokenizer, train_pairs, how, recipe.data.on_bad_rows)
    dev_ex, _, dev_report = encode_preference_pairs(loaded.tokenizer, dev_pairs, how, "skip", required=False)
    log(train_report.summary("train"))
    if dev_report.skipped or dev_report.truncated:
        log(dev_report.summary("dev"))
    disable_dropout(trainable.model)  # at the first step the policy is the reference, exactly
    if cfg.method == "full":
        logps = cached_reference_logps(
            trainable, {"train": train_ex, "dev": dev_ex}, run_dir / REFERENCE_CACHE, cfg.batch_size, log
        )
        train_ex, dev_ex = with_reference_logps(train_ex, logps["train"]), with_reference_logps(dev_ex, logps["dev"])
    objective = build_objective(recipe)
    train_items, dev_items = (unpair(train_ex), unpair(dev_ex)) if cfg.objective == "kto" else (train_ex, dev_ex)
    result = fit(recipe, trainable, train_items, dev_items, resume, log, objective=objective)
    info = {
        "objective": cfg.objective,
        "beta": cfg.beta,
        "reference_model": _portable(reference),
        "reference": "adapter disabled" if cfg.method == "lora" else "precomputed log-probabilities",
        "start_model": _portable(start_model),
        **_task_info(recipe),
    }
    metrics = {
        "objective": cfg.objective,
        "train_pairs": len(train_ex),
        "dev_pairs": len(dev_ex),
        "truncated": train_report.truncated,
        "skipped": len(train_report.skipped) + len(dev_report.skipped),
    }
    return save_trained_model(recipe, trainable, result, info, metrics)


def build_objective(recipe: Recipe):
    """The loop's objective for ``recipe.train``: DPO(beta, sft_weight) or KTO(beta, weights)."""
    from medtune.train.objectives import DPOObjective, KTOObjective

    cfg = recipe.train
    if cfg.objective == "dpo":
        return DPOObjective(beta=cfg.beta, sft_weight=cfg.sft_weight)
    return KTOObjective(
        beta=cfg.beta, desirable_weight=cfg.kto_desirable_weight, undesirable_weight=cfg.kto_undesirable_weight
    )


def unpair(pairs: Sequence[PairExample]) -> list[KTOExample]:
    """KTO's unpaired examples: each pair's chosen answer desirable, its rejected answer undesirable."""
    return [item for pair in pairs for item in (KTOExample(pair.chosen, True), KTOExample(pair.rejected, False))]


def _task_info(recipe: Recipe) -> dict:
    if recipe.task == "translation":
        return {"src_lang": recipe.data.src_lang, "tgt_lang": recipe.data.tgt_lang}
    return {"chat_template": True, "system_prompt": recipe.data.system_prompt}


def _portable(name: str) -> str:
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name


# --- LoRA: the SFT model merged, so a fresh adapter disabled is exactly the SFT model -----------------


def lora_reference(start_model: str, run_dir: Path, log) -> str:
    """The model a fresh adapter goes on: ``start_model`` itself, or its SFT adapter merged into its base."""
    ref = resolve_model(start_model)
    if ref.adapter_path is None:
        return start_model
    # several processes: the main one merges, the others then find its merge and re-use it
    with main_process_first() as is_main:
        merged = merged_sft_model(Path(start_model), run_dir / MERGED_FOLDER, log if is_main else _quiet)
    return str(merged)


def _quiet(message: str) -> None:
    """The log of a process other than the main one (the main one tells the user)."""


def merged_sft_model(adapter_dir: Path, merged: Path, log=print) -> Path:
    """``adapter_dir`` (a medtune LoRA output) merged into its base at ``merged``, written once.

    A folder left by an earlier merge of the same adapter (same adapter weights) is re-used; one
    from another adapter, or an interrupted merge, is replaced; a folder medtune did not write is refused.

    Raises:
        MedtuneError: ``merged`` exists and is not a merge medtune wrote.
    """
    from medtune.models.adapters import export_merged

    source = {"adapter": str(adapter_dir.resolve()), "adapter_sha256": _adapter_hash(adapter_dir)}
    marker = merged / MERGED_SOURCE_FILE
    if Path(resolve_model(str(adapter_dir)).base_path).resolve() == merged.resolve():
        raise MedtuneError(
            f"{adapter_dir} is an adapter on {merged} itself (an earlier preference training's output), so that "
            "folder cannot hold a new merge. Set output_dir to a folder outside this run (--set output_dir=...)."
        )
    if merged.exists():
        recorded = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None
        info = read_model_info(merged) or {}
        if recorded is None and info.get("merged"):  # medtune's merge, stopped before its marker was written
            log(f"{merged} holds an interrupted merge; merging again.")
            shutil.rmtree(merged)
        elif recorded is None:
            raise MedtuneError(
                f"{merged} exists but was not written by medtune (no {MERGED_SOURCE_FILE}); preference training "
                "merges the SFT adapter there. Move that folder away, or set output_dir to another folder."
            )
        elif recorded == source:
            log(f"Reference model: the SFT model merged earlier into {merged}.")
            return merged
        else:
            log(f"{merged} holds the merge of another adapter ({recorded['adapter']}); merging again.")
            shutil.rmtree(merged)
    log(f"Merging the SFT adapter {adapter_dir} into its base ({merged}): the reference model for preference training.")
    export_merged(adapter_dir, merged, log=log)
    marker.write_text(json.dumps(source, indent=2), encoding="utf-8")  # written last: the merge is complete
    return merged


def _adapter_hash(adapter_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        if (adapter_dir / name).is_file():
            digest.update(name.encode())
            digest.update((adapter_dir / name).read_bytes())
    return digest.hexdigest()


# --- full fine-tuning: the reference log-probabilities, computed once ---------------------------------


def weights_fingerprint(model) -> str:
    """SHA-256 of every parameter and buffer (names, dtypes, shapes, bytes): the reference model's identity."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()


def pairs_fingerprint(sets: dict[str, Sequence]) -> str:
    """SHA-256 of the encoded pairs' token ids and label masks, per named set."""
    digest = hashlib.sha256()
    for name in sorted(sets):
        digest.update(name.encode())
        for pair in sets[name]:
            for example in (pair.chosen, pair.rejected):
                digest.update(json.dumps([example.input_ids, example.labels]).encode())
    return digest.hexdigest()


def cached_reference_logps(
    trainable: TrainableModel, sets: dict[str, Sequence[PairExample]], cache: Path, batch_size: int = 8, log=print
) -> dict[str, torch.Tensor]:
    """The reference model's summed answer log-probs (``[pairs, 2]`` per set), from ``cache`` when it matches.

    ``trainable`` holds the reference model itself, before training changes it. The key is the hash of
    the encoded pairs and of its weights; without a match the log-probs are computed (no gradient,
    dropout off, :func:`medtune.train.objectives.reference_logps`) and saved to ``cache`` atomically.
    """
    model = trainable.model
    key = f"{pairs_fingerprint(sets)}:{weights_fingerprint(model)}"
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        if saved.get("key") == key:
            log(f"Reference log-probabilities: re-using {cache}.")
            return saved["logps"]
        log(f"{cache} was computed for other pairs or another reference model; computing again.")
    log(f"Computing the reference model's log-probabilities of {sum(len(s) for s in sets.values())} pairs, once.")
    loaded = trainable.loaded
    logps = {
        name: reference_logps(
            model, pairs, loaded.tokenizer.pad_token_id, loaded.is_seq2seq, batch_size, trainable.autocast_dtype
        )
        for name, pairs in sets.items()
    }
    if is_main_process():  # under several processes each computed them alike; one writes the cache
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        torch.save({"key": key, "logps": logps}, tmp)
        tmp.replace(cache)
    return logps
