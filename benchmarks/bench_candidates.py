"""Benchmark candidate generation from a local policy: batched prompts against one prompt at a time.

Both modes sample the same ``n`` candidates per question of the bundled multiple-choice demo set
(seeded per prompt and sample, so the texts must come out identical; the benchmark checks it):
  batched     - ``--batch-size`` sequences per forward pass (several prompts together)
  one_prompt  - one prompt's ``n`` samples per forward pass
A one-prompt warm-up runs first, untimed.

Usage: python benchmarks/bench_candidates.py [--model gemma-3-270m] [--prompts 16] [--n 4]
       [--max-new-tokens 32] [--batch-size 16]
Prints candidates/s of each mode and the speed-up. Needs the embedded model (cached on first use),
or any model folder given with ``--model``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def _prompts(count: int):
    from medtune.data.mcq import load_mcq
    from medtune.rlaif.prompt_items import prompt_items_from_mcq

    items, _ = load_mcq("demo:medical_mcq.jsonl", log=lambda *_: None)
    return prompt_items_from_mcq(items[:count])


def _generate(loaded, prompts, out: Path, args, batch_size: int):
    from medtune.rlaif.candidates import generate_candidates, read_candidates

    stats = generate_candidates(
        prompts,
        out,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        loaded=loaded,
        batch_size=batch_size,
        progress=None,
        log=lambda *_: None,
    )
    return stats, {row["id"]: row["text"] for row in read_candidates(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m", help="the policy: a known name or a model folder")
    parser.add_argument("--prompts", type=int, default=16, help="questions from the bundled demo set")
    parser.add_argument("--n", type=int, default=4, help="candidates per question")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="length limit of each candidate")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per forward pass in batched mode")
    parser.add_argument("--seed", type=int, default=42, help="base seed of the candidates")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    args = parser.parse_args()

    from medtune.models.loading import load_model

    loaded = load_model(args.model, device=args.device, log=lambda *_: None)
    prompts = _prompts(args.prompts)
    results, texts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        _generate(loaded, prompts[:1], Path(tmp) / "warmup.jsonl", args, args.n)
        for mode, batch_size in (("batched", args.batch_size), ("one_prompt", args.n)):
            started = time.perf_counter()
            stats, texts[mode] = _generate(loaded, prompts, Path(tmp) / f"{mode}.jsonl", args, batch_size)
            results[mode] = stats.to_dict() | {"wall_seconds": time.perf_counter() - started, "batch_size": batch_size}
    speedup = results["batched"]["candidates_per_s"] / results["one_prompt"]["candidates_per_s"]
    for mode, r in results.items():
        print(
            f"{mode:<10}: {r['candidates_per_s']:.2f} candidates/s ({r['candidates']} candidates for {r['prompts']} "
            f"prompts in {r['seconds']:.1f} s, batch {r['batch_size']} sequences; {r['exact_duplicates']} exact and "
            f"{r['near_duplicates']} near duplicates)"
        )
    print(f"batched / one prompt at a time: {speedup:.2f}x; identical texts: {texts['batched'] == texts['one_prompt']}")
    summary = {
        "model": args.model,
        "device": str(loaded.device),
        "dtype": str(loaded.dtype),
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "speedup": speedup,
        "identical_texts": texts["batched"] == texts["one_prompt"],
        "modes": results,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
