"""Worker for tests/train/test_fsdp.py: trains the tiny Gemma for a few float32 steps with medtune's loop,
once per variant, each from the same initial weights: ``lora`` (SFT, LoRA adapter), ``full`` (SFT, every
weight), ``lora-uneven`` (5 rows in global batches of 2: one rank has no item in the last step) and
``kto`` (its reference point scores each rank's share before the step); ``lora-resumed`` is ``lora``
stopped after step 2 and resumed from the periodic checkpoint.

Run as one process or under ``accelerate launch`` with an FSDP config; each rank writes
``rank<r>-<variant>.json`` (losses, whether the model came back unsharded); the main process saves the
trained model with ``save_pretrained`` into ``model-<variant>`` and its checkpoints go to ``ckpt-<variant>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, Gemma3ForCausalLM

from medtune.models.adapters import attach_lora
from medtune.train.fsdp import is_sharded
from medtune.train.loop import LoopConfig, TrainingInterrupted, train_loop
from medtune.train.objectives import KTOObjective, SFTObjective

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import training_items  # noqa: E402


def train(model_dir: str, tokenizer, rows: list[dict], variant: str, batch_scale: int, steps: int, out: str, **run):
    """Train ``variant`` from the same initial weights; returns (the model, the loop's result)."""
    objective = KTOObjective(beta=0.5) if variant == "kto" else SFTObjective()
    items = training_items(
        tokenizer, rows[:5] if variant == "lora-uneven" else rows, "kto" if variant == "kto" else "sft"
    )
    torch.manual_seed(0)  # the same LoRA initialisation on every rank and in the single process
    model = Gemma3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if variant != "full":
        model = attach_lora(model, 4, 8, 0.0, ["q_proj", "v_proj"])
    batch = (1 if variant == "lora-uneven" else 2) * batch_scale
    cfg = LoopConfig(batch_size=batch, grad_accum=1, lr=5e-3, seed=7, max_steps=steps, warmup_ratio=0.0)
    cfg.save_every = 2  # a periodic checkpoint of sharded weights and optimizer state
    cfg.stop_after = run.pop("stop_after", None)
    folder = Path(out) / f"ckpt-{variant}"
    pad = tokenizer.pad_token_id
    return model, train_loop(model, items, [], cfg, pad, False, folder, log=lambda *_: None, objective=objective, **run)


def main(model_dir: str, rows_file: str, variants: str, batch_scale: int, steps: int, out: str) -> None:
    torch.set_num_threads(1)  # two ranks on a two-core machine
    rank = int(os.environ.get("RANK", "0"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = json.loads(Path(rows_file).read_text())
    for variant in variants.split(","):
        args = (model_dir, tokenizer, rows, variant, batch_scale, steps, out)
        if variant == "lora-resumed":  # stopped after the checkpoint of step 2, then resumed from it
            with contextlib.suppress(TrainingInterrupted):
                train(*args, stop_after=2)
            model, result = train(*args, resume=True)
        else:
            model, result = train(*args)
        record = {"loss_history": result.loss_history, "unsharded": not is_sharded(model)}
        (Path(out) / f"rank{rank}-{variant}.json").write_text(json.dumps(record))
        if rank == 0:
            model.save_pretrained(Path(out) / f"model-{variant}", safe_serialization=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
