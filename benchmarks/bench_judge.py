"""How well the reference judge ranks human-preferred answers, and how fast it judges.

The development set (benchmarks/data/judge_devset.jsonl, written for medtune) holds medical
questions, each with a reference answer and two candidate answers, ``chosen`` being the one a
careful human prefers (the other is incomplete, wrong, vague or unsafe: its ``flaw``). For each
weighting of the reference judge the benchmark reports pairwise accuracy (the share of pairs where
the chosen answer scores strictly higher) with a 95% bootstrap interval, per flaw too, and
judgments/s (after the embedding model is loaded).

Usage: python benchmarks/bench_judge.py [--data benchmarks/data/judge_devset.jsonl] [--json OUT]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEVSET)
    parser.add_argument("--json", type=Path, default=None, help="Also write the results here.")
    args = parser.parse_args()
    sentence_model()  # load once, outside the timing
    results = {name: devset_accuracy(weights, args.data) for name, weights in WEIGHTINGS.items()}
    print(f"{'weighting':30} {'pairwise accuracy [95% CI]':28} {'ties':>4} {'judgments/s':>11}  by flaw")
    for name, r in results.items():
        interval = f"{r['pairwise_accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
        flaws = ", ".join(f"{k} {v}" for k, v in r["by_flaw"].items())
        print(f"{name:30} {interval:28} {r['ties']:>4} {r['judgments_per_s']:>11.1f}  {flaws}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
