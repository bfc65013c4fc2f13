"""Benchmark candidate generation: batched or concurrent against one prompt at a time.

Both modes sample the same ``n`` candidates per question of the bundled multiple-choice demo set
(seeded per prompt and sample, so the texts must come out identical; the benchmark checks it).
From the local policy (``--model``):
  batched     - ``--batch-size`` sequences per forward pass (several prompts together)
  one_prompt  - one prompt's ``n`` samples per forward pass
From an OpenAI-compatible endpoint (``--endpoint URL``, e.g. a running ``medtune serve``):
  concurrent  - ``--concurrency`` requests in flight (one request per prompt, ``n`` samples each)
  one_prompt  - one request at a time
A one-prompt warm-up runs first, untimed.

Usage: python benchmarks/bench_candidates.py [--model gemma-3-270m] [--prompts 16] [--n 4]
       [--max-new-tokens 32] [--batch-size 16] [--endpoint URL [--concurrency 8]]
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


def _generate(policy, prompts, out: Path, args, batch_size: int):
    """``policy``: a loaded model, or an endpoint."""
    from medtune.endpoint import Endpoint
    from medtune.rlaif.candidates import generate_candidates, read_candidates

    source = {"endpoint": policy} if isinstance(policy, Endpoint) else {"loaded": policy}
    stats = generate_candidates(
        prompts,
        out,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=batch_size,
        **source,
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
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (local policy)")
    parser.add_argument("--endpoint", help="an OpenAI-compatible API root (http://127.0.0.1:8000/v1) to time instead")
    parser.add_argument("--endpoint-model", help="the model name the endpoint serves (default: --model)")
    parser.add_argument("--api-key", help="the endpoint's API key, if it needs one")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight in the endpoint's fast mode")
    args = parser.parse_args()

    if args.endpoint:
        from medtune.endpoint import Endpoint, EndpointSettings

        def endpoint(concurrency: int) -> Endpoint:
            name = args.endpoint_model or args.model
            return Endpoint(EndpointSettings(args.endpoint, name, args.api_key, concurrency=concurrency, timeout=600))

        # Endpoint: batch_size is the prompts in flight between two writes of the candidates file.
        modes = {"concurrent": (endpoint(args.concurrency), args.concurrency), "one_prompt": (endpoint(1), 1)}
        where = {"endpoint": args.endpoint, "concurrency": args.concurrency}
    else:
        from medtune.models.loading import load_model

        loaded = load_model(args.model, device=args.device, log=lambda *_: None)
        modes = {"batched": (loaded, args.batch_size), "one_prompt": (loaded, args.n)}
        where = {"device": str(loaded.device), "dtype": str(loaded.dtype)}
    prompts = _prompts(args.prompts)
    results, texts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        first_policy, _ = next(iter(modes.values()))
        _generate(first_policy, prompts[:1], Path(tmp) / "warmup.jsonl", args, args.n)
        for mode, (policy, batch_size) in modes.items():
            started = time.perf_counter()
            stats, texts[mode] = _generate(policy, prompts, Path(tmp) / f"{mode}.jsonl", args, batch_size)
            results[mode] = stats.to_dict() | {"wall_seconds": time.perf_counter() - started, "batch_size": batch_size}
    fast, slow = list(results)
    speedup = results[fast]["candidates_per_s"] / results[slow]["candidates_per_s"]
    for mode, r in results.items():
        print(
            f"{mode:<10}: {r['candidates_per_s']:.2f} candidates/s ({r['candidates']} candidates for {r['prompts']} "
            f"prompts in {r['seconds']:.1f} s, batch {r['batch_size']}; {r['exact_duplicates']} exact and "
            f"{r['near_duplicates']} near duplicates)"
        )
    identical = texts[fast] == texts[slow]
    print(f"{fast} / one prompt at a time: {speedup:.2f}x; identical texts: {identical}")
    summary = {
        "model": args.endpoint_model or args.model,
        **where,
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "speedup": speedup,
        "identical_texts": identical,
        "modes": results,
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
