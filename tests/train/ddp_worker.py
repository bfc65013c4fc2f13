"""Worker for tests/train/test_ddp.py: trains the tiny Gemma for a few float32 steps with medtune's loop,
once per objective (SFT, DPO, KTO, reward-weighted), each from the same fresh LoRA adapter.

``sft-dropout`` trains SFT with LoRA dropout, ``sft-dropout-resumed`` the same stopped after step 2
and resumed from its checkpoint. Run as one process (``python ddp_worker.py ...``) or under ``accelerate launch``; each rank writes
``rank<r>-<objective>.json`` with its logged per-step losses and figures into the output folder, and
checkpoints go to ``ckpt-rank<r>-<objective>`` so the test can see which ranks wrote one.
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
from medtune.train.batching import encode_causal
from medtune.train.loop import LoopConfig, TrainingInterrupted, train_loop
from medtune.train.objectives import (
    DPOObjective,
    KTOExample,
    KTOObjective,
    PairExample,
    RewardWeightedObjective,
    ScoredExample,
    SFTObjective,
)


def training_items(tokenizer, rows: list[dict], objective: str) -> list:
    """The objective's items from translation rows: SFT examples, DPO pairs (rejected: another row's
    translation), KTO's unpaired halves of those pairs, or examples with fixed advantages."""
    half = len(rows) // 2

    def example(i: int, answer_row: int):
        return encode_causal(tokenizer, f"English: {rows[i]['en']}\nSpanish:", f" {rows[answer_row]['es']}\n", 96)

    if objective == "sft":
        return [example(i, i) for i in range(len(rows))]
    if objective == "reward-weighted":
        return [ScoredExample(example(i, i), (i % 5 - 2) / 2) for i in range(len(rows))]
    pairs = [PairExample(example(i, i), example(i, i + half)) for i in range(half)]
    if objective == "dpo":
        return pairs
    return [item for p in pairs for item in (KTOExample(p.chosen, True), KTOExample(p.rejected, False))]


OBJECTIVES = {
    "sft": SFTObjective(),
    "dpo": DPOObjective(beta=0.5),
    "kto": KTOObjective(beta=0.5),
    "reward-weighted": RewardWeightedObjective(kl_coef=0.5),
}


def train(model_dir: str, tokenizer, rows: list[dict], name: str, batch_size: int, steps: int, folder: Path, **run):
    """Train ``name``'s objective from the same fresh LoRA adapter (``-dropout``: with LoRA dropout)."""
    objective = name.removesuffix("-resumed").removesuffix("-dropout")
    dropout = 0.3 if "-dropout" in name else 0.0  # per-rank random streams matter only with dropout
    torch.manual_seed(0)  # the same LoRA initialisation on every rank and in the single process
    model = attach_lora(
        Gemma3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32), 4, 8, dropout, ["q_proj", "v_proj"]
    )
    cfg = LoopConfig(
        batch_size=batch_size, grad_accum=1, lr=5e-3, seed=7, max_steps=steps, warmup_ratio=0.0, save_every=1
    )
    cfg.stop_after = run.pop("stop_after", None)
    items = training_items(tokenizer, rows, objective)
    pad = tokenizer.pad_token_id
    return train_loop(
        model, items, [], cfg, pad, False, folder, log=lambda *_: None, objective=OBJECTIVES[objective], **run
    )


def main(model_dir: str, rows_file: str, objectives: str, batch_size: int, steps: int, out: str) -> None:
    torch.set_num_threads(1)  # two ranks on a two-core machine
    rank = int(os.environ.get("RANK", "0"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = json.loads(Path(rows_file).read_text())
    for name in objectives.split(","):
        folder = Path(out) / f"ckpt-rank{rank}-{name}"
        if name.endswith("-resumed"):  # stopped after step 2 (a checkpoint), then resumed
            folder = Path(out) / f"ckpt-{name}"  # every rank resumes from the one checkpoint, as in a run folder
            with contextlib.suppress(TrainingInterrupted):
                train(model_dir, tokenizer, rows, name, batch_size, steps, folder, stop_after=2)
            result = train(model_dir, tokenizer, rows, name, batch_size, steps, folder, resume=True)
        else:
            result = train(model_dir, tokenizer, rows, name, batch_size, steps, folder)
        record = {
            "loss_history": result.loss_history,
            "metric_history": result.metric_history,
            "input_tokens": result.input_tokens,
            "target_tokens": result.target_tokens,
        }
        (Path(out) / f"rank{rank}-{name}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
