"""Benchmark medtune's multiple-choice evaluation on the embedded model (gemma-3-270m).

Each part runs in its own process so that peak memory (max RSS) is measured per part:
  loglik    - letter log-likelihood scoring of N four-option questions (default 500)
  generate  - greedy replies + letter extraction on a smaller set (default 50)

Questions come from ../shared/data/qa/medmcqa_dev.jsonl when it exists, else the bundled demo set
repeated up to N. Target: 500 questions in loglik mode in at most 5 minutes on 2 CPU cores.

Usage: python benchmarks/bench_mcq.py [--n 500] [--generate-n 50] [--batch-size 8] [--limit 20]
``--limit`` caps both parts (a quick check that the benchmark runs, not a timing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# ../shared/data next to the repository, as in the development setup
MEDMCQA = Path(__file__).resolve().parents[2] / "shared" / "data" / "qa" / "medmcqa_dev.jsonl"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _items(n: int) -> tuple[list, str]:
    """The first ``n`` four-option questions, and where they came from."""
    from medtune.data.mcq import load_mcq

    source = str(MEDMCQA) if MEDMCQA.is_file() else "demo:medical_mcq.jsonl"
    items, _ = load_mcq(source, log=lambda *_: None)
    items = [item for item in items if len(item.options) == 4]
    repeated = [
        dataclasses.replace(items[i % len(items)], id=f"{items[i % len(items)].id}#{i // len(items)}") for i in range(n)
    ]
    return repeated, source if len(items) >= n else f"{source} (repeated to {n})"


def part(mode: str, n: int, batch_size: int, max_length: int) -> dict:
    from medtune.eval.mcq import evaluate_mcq
    from medtune.models.loading import load_model

    items, source = _items(n)
    started = time.perf_counter()
    loaded = load_model("gemma-3-270m")
    load_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        metrics = evaluate_mcq(
            loaded, items, Path(tmp), mode=mode, batch_size=batch_size, max_length=max_length, label=None
        )
    return {
        "mode": mode,
        "items": metrics["n"],
        "source": source,
        "seconds": metrics["seconds"],
        "items_per_s": metrics["items_per_s"],
        "load_seconds": round(load_seconds, 1),
        "accuracy": metrics["accuracy"],
        "normalisation": metrics["normalisation"],
        "unparsed": metrics.get("unparsed"),
        "prompt_tokens_mean": metrics["prompt_tokens_mean"],
        "peak_mb": round(_peak_mb()),
    }


def _run_part(mode: str, n: int, args) -> dict:
    cmd = [sys.executable, __file__, "--part", mode, "--n", str(n), "--batch-size", str(args.batch_size)]
    cmd += ["--max-length", str(args.max_length)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"part {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="questions scored in loglik mode")
    parser.add_argument("--generate-n", type=int, default=50, help="questions answered in generate mode")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass / generation batch")
    parser.add_argument("--max-length", type=int, default=1024, help="prompt window in tokens")
    parser.add_argument("--limit", type=int, help="cap both parts at this many questions (quick check)")
    parser.add_argument("--skip-generate", action="store_true", help="time loglik mode only")
    parser.add_argument("--part", choices=["loglik", "generate"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        print(json.dumps(part(args.part, args.n, args.batch_size, args.max_length)))
        return
    cap = args.limit or max(args.n, args.generate_n)
    results = {"loglik": _run_part("loglik", min(args.n, cap), args)}
    if not args.skip_generate:
        results["generate"] = _run_part("generate", min(args.generate_n, cap), args)
    for mode, r in results.items():
        print(
            f"{mode:<9}: {r['items_per_s']:.2f} questions/s, {r['items']} questions in {r['seconds']:.1f} s "
            f"(+{r['load_seconds']:.0f} s model load), {r['prompt_tokens_mean']:.0f} prompt tokens on average, "
            f"peak RSS {r['peak_mb']} MB, accuracy {r['accuracy']:.3f}"
        )
    loglik = results["loglik"]
    projected = 500 / loglik["items_per_s"]
    print(f"loglik projected for 500 questions: {projected:.0f} s (target <= 300 s on 2 CPU cores)")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
