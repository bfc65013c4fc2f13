"""Worker for tests/models/test_sharded_head.py, run under ``accelerate launch`` with 2 processes.

Scores one batch with the tiny Gemma (float32, soft-capped) through medtune's training loss and
sequence log-probs twice: whole (medtune's fused output layer), then after FSDP2's ``fully_shard``
of every decoder layer and the model (the head's weight becomes a sharded DTensor, so the scorer
must fall back to the model's own forward). Each rank writes ``rank<r>.json`` with both results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.distributed.fsdp import fully_shard
from transformers import AutoTokenizer, Gemma3ForCausalLM

from medtune.data.parallel import Pair
from medtune.models.fused_head import sharded_head_reason
from medtune.models.scoring import causal_target_loss, check_output_layer, sequence_logps
from medtune.train.batching import collate, encode_translation_pairs
from medtune.train.distributed import world


def score(model, batch: dict[str, torch.Tensor]) -> dict:
    """Training loss, its gradients (whole tensors) and sequence log-probs through medtune's scorer."""
    model.zero_grad(set_to_none=True)
    loss_sum, n = causal_target_loss(model, batch)
    (loss_sum / n).backward()
    grads = {}
    for name, param in model.named_parameters():
        grad = param.grad.full_tensor() if hasattr(param.grad, "full_tensor") else param.grad
        grads[name] = grad.detach().clone()
    with torch.no_grad():
        logps = sequence_logps(model, batch, seq2seq=False)
    check = check_output_layer(model, batch)
    return {"loss": float(loss_sum) / n, "n": n, "logps": logps.tolist(), "fused": check.fused, "grads": grads}


def main(model_dir: str, pairs_file: str, out: str) -> None:
    torch.set_num_threads(1)
    rank, size = world()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    pairs = [Pair(row["en"], row["es"]) for row in json.loads(Path(pairs_file).read_text())]
    batch = collate(encode_translation_pairs(tokenizer, pairs, False, 96), tokenizer.pad_token_id, False)
    model = Gemma3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    model.config.final_logit_softcapping = 5.0  # the soft-capped head, so both paths apply it
    whole = score(model, batch)
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    reason = sharded_head_reason(model)
    sharded = score(model, batch)
    grad_diff = max(float((whole["grads"][k] - sharded["grads"][k]).abs().max()) for k in whole["grads"])
    grad_scale = max(float(g.abs().max()) for g in whole["grads"].values())
    record = {
        "size": size,
        "reason": reason,
        **{f"whole_{k}": v for k, v in whole.items() if k != "grads"},
        **{f"sharded_{k}": v for k, v in sharded.items() if k != "grads"},
        "max_grad_diff": grad_diff,
        "max_grad": grad_scale,
    }
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
