"""Benchmark medtune's paired bootstrap (BLEU, chrF++, TER) against sacreBLEU's own paired bootstrap.

Two synthetic systems translate the same test set: each reference with words dropped and swapped
at slightly different rates. Timed in this process, one after the other: scoring both systems as
an evaluation does; medtune's paired bootstrap after that scoring (what a report adds: the sentence
statistics are cached); medtune's paired bootstrap from scratch; sacreBLEU's PairedTest (paired_bs).
All use 1,000 resamples and the same resample indices (sacreBLEU's seed); the observed deltas
must agree exactly. TER's statistics extraction (pure Python in sacreBLEU) dominates from scratch.

Usage: python benchmarks/bench_significance.py [--data /work/shared/data/translation/X.jsonl]
       [--sentences 1000] [--resamples 1000] [--tgt-col es]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

SACREBLEU_SEED = 12345


class Timer:
    """Wall-clock and process CPU seconds of a ``with`` block."""

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu

    def __str__(self) -> str:
        return f"{self.wall:6.2f} / {self.cpu:6.2f}"


def perturb(sentence: str, rng: random.Random, drop: float, swap: float) -> str:
    """The sentence with words dropped and neighbouring words swapped, each with the given rate."""
    words = [w for w in sentence.split() if rng.random() > drop]
    for i in range(len(words) - 1):
        if rng.random() < swap:
            words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def load_references(path: Path, column: str, n: int) -> list[str]:
    refs = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                refs.append(json.loads(line)[column])
            if len(refs) == n:
                break
    return refs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = sorted(Path("/work/shared/data/translation").glob("*.jsonl"))
    parser.add_argument("--data", type=Path, default=default[0] if default else None)
    parser.add_argument("--tgt-col", default="es")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()

    from sacrebleu.significance import PairedTest

    from medtune.eval.metrics import _statistics, corpus_scores, translation_metrics
    from medtune.eval.significance import paired_translation_deltas

    refs = load_references(args.data, args.tgt_col, args.sentences)
    rng = random.Random(0)
    system_a = [perturb(r, rng, 0.15, 0.10) for r in refs]
    system_b = [perturb(r, rng, 0.14, 0.10) for r in refs]  # a close second system: a realistic p-value

    # What an evaluation already pays: scoring both systems (this extracts the sentence statistics).
    with Timer() as scoring:
        corpus_scores(system_a, refs), corpus_scores(system_b, refs)
    # What the paired bootstrap adds after that scoring (statistics cached in this process).
    with Timer() as added:
        paired_translation_deltas(system_a, system_b, refs, args.resamples, SACREBLEU_SEED)
    # From nothing: statistics extraction included, like sacreBLEU's test below.
    _statistics.cache_clear()
    with Timer() as ours_time:
        ours = paired_translation_deltas(system_a, system_b, refs, args.resamples, SACREBLEU_SEED)

    with Timer() as theirs_time:
        test = PairedTest(
            [("a", system_a), ("b", system_b)], translation_metrics(), [refs], test_type="bs", n_samples=args.resamples
        )
        _, theirs = test()

    print(f"{len(refs)} sentences from {args.data}, {args.resamples} resamples, BLEU + chrF++ + TER")
    for name, key in (("bleu", "BLEU"), ("chrf", "chrF2++"), ("ter", "TER")):
        baseline, system = theirs[key]
        delta = ours[name]
        assert delta.value == system.score - baseline.score, (name, delta.value, system.score - baseline.score)
        print(
            f"  {name:5s} delta {delta.value:+.3f}  95% [{delta.ci_low:+.3f}, {delta.ci_high:+.3f}]  "
            f"p {delta.p_value:.4f} (sacreBLEU's rule: {system.p_value:.4f})"
        )
    print("seconds (wall / CPU of this process; CPU is the fair figure on a shared machine):")
    print(f"  scoring both systems (BLEU, chrF++, TER), as an evaluation does: {scoring}")
    print(f"  medtune paired bootstrap added after that scoring:               {added}")
    print(f"  medtune paired bootstrap from scratch (with extraction):         {ours_time}")
    print(f"  sacreBLEU paired bootstrap (with extraction):                    {theirs_time}")
    print(f"ratio sacreBLEU / medtune from scratch, CPU time: {theirs_time.cpu / ours_time.cpu:.2f}x")


if __name__ == "__main__":
    main()
