"""Benchmark DPO against SFT on the same model: peak memory and training throughput.

DPO trains B pairs per step (chosen and rejected stacked in one batch, plus the reference pass with
the LoRA adapter disabled); SFT trains a batch of 2B sequences: the very same sequences (every
pair's chosen and rejected translation), so both see the same tokens and the same padding. Each part
runs in its own process, one after the other, after one untimed warm-up step (peak RSS is per
process; on CUDA the peak allocated GPU memory is reported too). The pairs are translation pairs of the bundled medical corpus: the
prompt is the English sentence, chosen its Spanish reference, rejected another sentence's reference.

Target (issue 8): DPO peak memory at most 1.3x SFT's (one copy of the weights).

Usage: python benchmarks/bench_dpo.py [--model gemma-3-270m] [--steps 8] [--pairs 4] [--dtype auto]
         [--method lora|full] [--device auto]
Quick check: python benchmarks/bench_dpo.py --model TINY_MODEL_FOLDER --steps 2 --pairs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARIAN_TARGETS = "[q_proj,k_proj,v_proj,out_proj,fc1,fc2]"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _recipe(args: argparse.Namespace, objective: str, batch_size: int):
    from transformers import AutoConfig

    from medtune.models.loading import resolve_model
    from medtune.recipes.loader import load_recipe

    seq2seq = getattr(AutoConfig.from_pretrained(resolve_model(args.model).base_path), "is_encoder_decoder", False)
    sets = [
        f"model={args.model}",
        f"device={args.device}",
        f"train.objective={objective}",
        f"train.method={args.method}",
        f"train.dtype={args.dtype}",
        f"train.max_steps={args.steps}",
        f"train.batch_size={batch_size}",
        f"train.max_length={args.max_length}",
        "train.eval_every=1000000",
        "train.save_every=1000000",
        *([f"train.lora.target_modules={MARIAN_TARGETS}"] if seq2seq else []),
    ]
    return load_recipe("translate-en-es", sets)


def _pairs(n: int):
    """``n`` preference pairs from the bundled corpus: chosen = the reference, rejected = another's."""
    from medtune.data.parallel import load_pairs
    from medtune.data.preference import PreferencePair

    corpus = load_pairs("demo:medical_en_es.jsonl")[: 2 * n]
    return [PreferencePair(str(i), corpus[i].src, corpus[i].tgt, corpus[n + i].tgt) for i in range(n)]


def run_part(args: argparse.Namespace) -> dict:
    """One part (``dpo`` or ``sft``) in this process: ``steps`` optimizer steps on the same sequences."""
    import torch

    from medtune.train.loop import train_loop
    from medtune.train.objectives import SFTObjective
    from medtune.train.preference import build_objective
    from medtune.train.preference_data import PairEncoding, encode_preference_pairs
    from medtune.train.setup import loop_config, prepare_trainable_model

    dpo = args.part == "dpo"
    recipe = _recipe(args, "dpo" if dpo else "sft", args.pairs if dpo else 2 * args.pairs)
    trainable = prepare_trainable_model(recipe, log=lambda *_: None)
    loaded = trainable.loaded
    how = PairEncoding("translation", loaded.is_seq2seq, args.max_length)
    pairs, _, _ = encode_preference_pairs(loaded.tokenizer, _pairs(args.steps * args.pairs), how)
    # SFT: each step's 2B sequences are the chosen and rejected rows of the DPO step's B pairs
    items = pairs if dpo else [e for p in pairs for e in (p.chosen, p.rejected)]
    objective = build_objective(recipe) if dpo else SFTObjective()
    if args.method == "full" and dpo:
        from medtune.train.objectives import reference_logps, with_reference_logps

        started = time.perf_counter()
        items = with_reference_logps(
            items, reference_logps(trainable.model, items, loaded.tokenizer.pad_token_id, loaded.is_seq2seq)
        )
        reference_seconds = time.perf_counter() - started
    else:
        reference_seconds = 0.0
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()

    def train(steps: int):
        with tempfile.TemporaryDirectory() as tmp:
            config = loop_config(recipe, trainable.autocast_dtype)
            config.max_steps = steps
            return train_loop(
                trainable.model,
                items,
                [],
                config,
                loaded.tokenizer.pad_token_id,
                loaded.is_seq2seq,
                Path(tmp),
                log=lambda *_: None,
                objective=objective,
            )

    train(1)  # untimed warm-up: first-call costs (output-layer parity probe, kernel set-up) are not throughput
    started = time.perf_counter()
    result = train(args.steps)
    seconds = time.perf_counter() - started
    tokens = sum(e.n_target for p in pairs for e in (p.chosen, p.rejected))
    return {
        "part": args.part,
        **trainable.precision_info(),
        "steps": result.steps,
        "sequences_per_step": 2 * args.pairs,
        "answer_tokens": tokens,
        "seconds": seconds,
        "answer_tokens_per_s": tokens / seconds,
        "reference_precompute_seconds": reference_seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "final_loss": result.loss_history[-1][1],
    }


def _run_in_subprocess(args: argparse.Namespace, part: str) -> dict:
    cmd = [sys.executable, __file__, "--part", part]
    for name in ("model", "steps", "pairs", "dtype", "method", "device", "max_length"):
        cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"part {part} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="the model both parts train (a name or folder)")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps of each part")
    parser.add_argument("--pairs", type=int, default=4, help="B: pairs per DPO step (SFT steps take 2B sequences)")
    parser.add_argument("--dtype", default="auto", help="train.dtype: auto, float32 or bfloat16")
    parser.add_argument("--method", default="lora", choices=["lora", "full"], help="train.method")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--max-length", type=int, default=256, help="longest sequence in tokens")
    parser.add_argument("--part", choices=["dpo", "sft"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(run_part(args)))
        return
    sft, dpo = _run_in_subprocess(args, "sft"), _run_in_subprocess(args, "dpo")
    print(
        f"{args.model}, {dpo['device']} ({dpo['device_name']}), {dpo['mixed_precision']}, train.method={args.method}; "
        f"{args.steps} steps, DPO {args.pairs} pairs/step vs SFT {2 * args.pairs} sequences/step (the same sequences)"
    )
    rows = [("answer tokens/s", "answer_tokens_per_s"), ("peak RSS MB", "peak_rss_mb")]
    if dpo["peak_cuda_mb"] is not None:
        rows.append(("peak CUDA MB", "peak_cuda_mb"))
    print(f"{'figure':<18}{'SFT':>12}{'DPO':>12}  DPO / SFT")
    for label, key in rows:
        print(f"{label:<18}{sft[key]:>12.1f}{dpo[key]:>12.1f}  {dpo[key] / sft[key]:.2f}x")
    memory = "peak_cuda_mb" if dpo["peak_cuda_mb"] is not None else "peak_rss_mb"
    ratio = dpo[memory] / sft[memory]
    print(f"target DPO peak memory <= 1.3x SFT: {ratio:.2f}x, {'met' if ratio <= 1.3 else 'NOT met'}")
    print(json.dumps({"sft": sft, "dpo": dpo}, indent=2))


if __name__ == "__main__":
    main()
