"""Worker for tests/train/test_ddp.py: trains the tiny Gemma for a few float32 steps with medtune's loop.

Run as one process (``python ddp_worker.py ...``) or under ``torchrun``/``accelerate launch``; each rank
writes ``rank<r>.json`` with its logged per-step losses into the output folder, and checkpoints go to
``ckpt-rank<r>`` so the test can see which ranks wrote one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, Gemma3ForCausalLM

from medtune.data.parallel import Pair
from medtune.models.adapters import attach_lora
from medtune.train.batching import encode_translation_pairs
from medtune.train.loop import LoopConfig, train_loop


def main(model_dir: str, pairs_file: str, batch_size: int, steps: int, out: str) -> None:
    torch.set_num_threads(1)  # two ranks on a two-core machine
    rank = int(os.environ.get("RANK", "0"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)  # the same LoRA initialisation on every rank and in the single process
    model = attach_lora(
        Gemma3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32), 4, 8, 0.0, ["q_proj", "v_proj"]
    )
    pairs = [Pair(row["en"], row["es"]) for row in json.loads(Path(pairs_file).read_text())]
    train = encode_translation_pairs(tokenizer, pairs, seq2seq=False, max_length=96)
    cfg = LoopConfig(
        batch_size=batch_size, grad_accum=1, lr=5e-3, seed=7, max_steps=steps, warmup_ratio=0.0, save_every=1
    )
    result = train_loop(
        model, train, [], cfg, tokenizer.pad_token_id, False, Path(out) / f"ckpt-rank{rank}", log=lambda *_: None
    )
    record = {
        "loss_history": result.loss_history,
        "input_tokens": result.input_tokens,
        "target_tokens": result.target_tokens,
    }
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
