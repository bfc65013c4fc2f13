"""Microbenchmark of the causal-LM training loss's output layer: LoRA training steps on a small Gemma 3
with the real 262k-token vocabulary (so the output layer dominates, as in the embedded model).

Prints the median and fastest seconds per optimizer step over a few steps (the fastest is the steadier
figure on a shared machine), and the one-off cost of the parity
probe (medtune.models.scoring) where it exists. Run it once against each checkout to compare, e.g.:

    PYTHONPATH=/path/to/old/src python benchmarks/bench_head.py
    PYTHONPATH=$PWD/src python benchmarks/bench_head.py

Usage: python benchmarks/bench_head.py [--steps 6] [--vocab 262144] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def build_model(vocab: int):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from medtune.models.adapters import attach_lora

    config = Gemma3TextConfig(
        vocab_size=vocab,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    return attach_lora(Gemma3ForCausalLM(config), 8, 16, 0.0, ["q_proj", "v_proj"]).train()


def make_batch(vocab: int, rows: int = 4, length: int = 128) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(4, vocab, (rows, length), generator=generator)
    labels = ids.clone()
    labels[:, : length // 2] = -100  # a prompt half and a target half, as in translation SFT
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--vocab", type=int, default=262144)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from medtune.train.loss import target_loss

    model = build_model(args.vocab)
    batch = make_batch(args.vocab)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    try:
        from medtune.models.scoring import check_output_layer
    except ImportError:  # a checkout from before the parity probe
        probe = "n/a (no probe in this checkout)"
    else:
        started = time.perf_counter()
        check = check_output_layer(model, batch)
        probe = f"{time.perf_counter() - started:.3f} s (fused: {check.fused}, max |Δ| {check.max_diff:.2g})"
    times = []
    for _ in range(args.steps + 1):  # the first step warms up
        started = time.perf_counter()
        loss_sum, n = target_loss(model, batch, seq2seq=False)
        (loss_sum / n).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    print(f"probe: {probe}")
    steps = times[1:]
    print(f"seconds per step over {args.steps}: median {statistics.median(steps):.3f}, fastest {min(steps):.3f}")
    print(f"final loss {loss_sum.item() / n:.4f} over {n} target tokens")


if __name__ == "__main__":
    main()
