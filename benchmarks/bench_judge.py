"""How well the reference judge ranks human-preferred answers, and how fast it judges.

The development set (benchmarks/data/judge_devset.jsonl, written for medtune) holds medical
questions, each with a reference answer and two candidate answers, ``chosen`` being the one a
careful human prefers (the other is incomplete, wrong, vague or unsafe: its ``flaw``). For each
weighting of the reference judge the benchmark reports pairwise accuracy (the share of pairs where
the chosen answer scores strictly higher) with a 95% bootstrap interval, per flaw too, and
judgments/s (after the embedding model is loaded).

With ``--endpoint URL --judge-model NAME`` it also times the ``llm`` judge on the set's answers
against that OpenAI-compatible server (e.g. ``medtune serve``, which batches concurrent requests):
one request at a time, then ``--concurrency`` in flight, reporting judgments/s of each, their ratio,
parse failures and the judge's pairwise accuracy.

Usage: python benchmarks/bench_judge.py [--data benchmarks/data/judge_devset.jsonl] [--json OUT]
         [--endpoint http://127.0.0.1:8000/v1 --judge-model NAME [--api-key K] [--concurrency 8]
          [--max-tokens 128] [--limit N]]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from medtune.judge.agreement import pairwise_accuracy
from medtune.judge.embedding import sentence_model
from medtune.judge.reference import ReferenceJudge
from medtune.judge.rows import load_judge_rows

DEVSET = Path(__file__).parent / "data" / "judge_devset.jsonl"
WEIGHTINGS = {
    "similarity only": {"similarity": 1.0, "coverage": 0.0},
    "coverage only": {"similarity": 0.0, "coverage": 1.0},
    "combined 0.7/0.3 (default)": {"similarity": 0.7, "coverage": 0.3},
}


def devset_accuracy(weights: dict[str, float], data: Path = DEVSET) -> dict:
    """Pairwise accuracy of the reference judge with ``weights`` on the development set, per flaw too."""
    rows = load_judge_rows(str(data))
    flaws = {json.loads(line)["id"]: json.loads(line).get("flaw", "") for line in data.read_text().splitlines()}
    judge = ReferenceJudge(weights=weights)
    items = [item for row in rows for item in row.items()]
    started = time.perf_counter()
    judgments = judge.score(items)
    seconds = time.perf_counter() - started
    scores = {j.id: j.score for j in judgments}
    chosen = [scores[r.id + "#chosen"] for r in rows]
    rejected = [scores[r.id + "#rejected"] for r in rows]
    result = pairwise_accuracy(chosen, rejected) | {"judgments_per_s": len(items) / seconds}
    by_flaw = {}
    for flaw in sorted(set(flaws.values())):
        picked = [i for i, r in enumerate(rows) if flaws[r.id] == flaw]
        wins = sum(chosen[i] > rejected[i] for i in picked)
        by_flaw[flaw] = f"{wins}/{len(picked)}"
    return result | {"by_flaw": by_flaw}


def endpoint_throughput(args) -> dict:
    """judgments/s of the llm judge at ``args.endpoint``: sequential, then ``args.concurrency`` requests in flight."""
    from medtune.judge.backends import EndpointChatBackend
    from medtune.judge.llm import LLMJudge

    rows = load_judge_rows(str(args.data))[: args.limit or None]
    items = [item for row in rows for item in row.items()]
    result = {}
    for concurrency in (1, args.concurrency):
        backend = EndpointChatBackend(
            args.endpoint, args.judge_model, args.api_key, concurrency=concurrency, max_tokens=args.max_tokens
        )
        judge = LLMJudge(backend)
        started = time.perf_counter()
        judgments = judge.score(items)
        seconds = time.perf_counter() - started
        scores = {j.id: j.score for j in judgments}
        pairs = [(scores[r.id + "#chosen"], scores[r.id + "#rejected"]) for r in rows]
        pairs = [(c, r) for c, r in pairs if c is not None and r is not None]
        accuracy = pairwise_accuracy([c for c, _ in pairs], [r for _, r in pairs])
        result[f"concurrency {concurrency}"] = {
            "judgments_per_s": len(items) / seconds,
            "parse_failures": judge.stats.parse_failures,
            "retries": judge.stats.retries,
            **accuracy,
        }
    rates = [r["judgments_per_s"] for r in result.values()]
    return result | {"speedup": rates[-1] / rates[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEVSET)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    parser.add_argument("--endpoint", default=None, help="Also time the llm judge at this OpenAI-compatible server.")
    parser.add_argument("--judge-model", default=None, help="The model name at --endpoint.")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128, help="Reply length limit of the llm judge.")
    parser.add_argument("--limit", type=int, default=0, help="Only the first N pairs with --endpoint (0: all).")
    args = parser.parse_args()
    sentence_model()  # load once, outside the timing
    results = {name: devset_accuracy(weights, args.data) for name, weights in WEIGHTINGS.items()}
    print(f"{'weighting':30} {'pairwise accuracy [95% CI]':28} {'ties':>4} {'judgments/s':>11}  by flaw")
    for name, r in results.items():
        interval = f"{r['pairwise_accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        flaws = ", ".join(f"{k} {v}" for k, v in r["by_flaw"].items())
        print(f"{name:30} {interval:28} {r['ties']:>4} {r['judgments_per_s']:>11.1f}  {flaws}")
    if args.endpoint:
        timing = endpoint_throughput(args)
        for name, r in timing.items():
            if name != "speedup":
                accuracy = (
                    "n/a" if r["pairwise_accuracy"] is None else f"{r['pairwise_accuracy']:.3f} on {r['pairs']} pairs"
                )
                print(
                    f"llm judge, {name}: {r['judgments_per_s']:.2f} judgments/s, parse failures {r['parse_failures']}"
                    f" (re-asks {r['retries']}), pairwise accuracy {accuracy}"
                )
        print(f"llm judge speedup, concurrency {args.concurrency} vs 1: {timing['speedup']:.2f}x")
        results["llm endpoint"] = timing
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
