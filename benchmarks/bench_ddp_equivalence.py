"""Are 2 data-parallel processes the same training as 1 process with the doubled batch, over many steps?

Trains a float32 model with LoRA (the translate-en-es recipe's settings) on the TICO-19 health pairs
twice for the same steps and global batch: under ``accelerate launch`` with 2 processes (gloo, CPU) x
batch B, and in 1 process x batch 2B; prints every step's two losses and the largest relative per-step
difference against issue 10's targets (1e-4 over the first 3 steps, 1% over 50). ``--model tiny``
(default) is a 2-layer Gemma 3 with the embedded model's tokenizer and random weights, built here;
``--model embedded`` is the embedded Gemma 3 270M itself (slow on CPU: run it once, not in a loop).

Usage: python -m benchmarks.bench_ddp_equivalence [--model tiny|embedded] [--steps 50] [--batch-size 4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.workloads.ddp import PROCESSES, launch_ranks, train


def build_tiny_gemma(folder: Path) -> Path:
    """A 2-layer Gemma 3 (hidden 64) with the embedded model's config and tokenizer, seeded random weights."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, Gemma3ForCausalLM

    from medtune.models.gguf import ensure_embedded_model

    source = ensure_embedded_model(log=lambda *_: None)
    config = AutoConfig.from_pretrained(source)
    config.update(
        {
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "layer_types": config.layer_types[:2],
        }
    )
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["tiny", "embedded"], default="tiny", help="which float32 model to train")
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps of each run")
    parser.add_argument("--batch-size", type=int, default=4, help="batch per process (the single process: twice it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        model = "gemma-3-270m" if args.model == "embedded" else str(build_tiny_gemma(Path(folder) / "tiny"))
        ranks = launch_ranks(args.batch_size, args.steps, "float32", model, Path(folder))
        single = train(PROCESSES * args.batch_size, args.steps, "float32", model)
    two, one = ranks[0]["losses"], single["losses"]
    relative = [abs(a - b) / abs(b) for a, b in zip(two, one, strict=True)]
    print(f"{'step':>4}  {'2 x B':>10}  {'1 x 2B':>10}  {'rel diff':>9}")
    for step, (a, b, r) in enumerate(zip(two, one, relative, strict=True), 1):
        print(f"{step:4d}  {a:10.6f}  {b:10.6f}  {r:9.2e}")
    first = max(abs(a - b) for a, b in zip(two[:3], one[:3], strict=True))
    print(
        f"\n{args.model} model, float32, {args.steps} steps, 2 processes x {args.batch_size} vs 1 x "
        f"{PROCESSES * args.batch_size}: ranks agree: {all(r['losses'] == two for r in ranks)}\n"
        f"max |diff| over the first 3 steps: {first:.2e} (target 1e-4: {'met' if first <= 1e-4 else 'NOT met'})\n"
        f"max relative diff over {len(relative)} steps: {max(relative):.2e} "
        f"(target 1%: {'met' if max(relative) <= 0.01 else 'NOT met'})\n"
        f"wall: 2 processes {max(r['wall_s'] for r in ranks):.1f} s, 1 process {single['wall_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
