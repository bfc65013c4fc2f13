"""Benchmark terminology accuracy: speed with the bundled glossary, and how close reference
translations scored against themselves come to 100% (what a perfect translation should get).

  speed  - compile the bundled glossary once, then check N sentence pairs (default 1,000: the demo
           medical corpus repeated), best of 3. Target: well under a second.
  self   - term accuracy and occurrences of each corpus's references against themselves: the
           demo medical corpus, and ../shared/data/translation/tico19_en_es_general_health.jsonl
           when it exists (a corpus the glossary was not written for).

Usage: python benchmarks/bench_terminology.py [--n 1000] [--glossary demo:glossary_en_es.tsv]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from medtune.data.glossary import load_glossary
from medtune.data.io import read_rows
from medtune.eval.terminology import TermMatcher, terminology_accuracy

# ../shared/data next to the repository, as in the development setup
TICO = Path(__file__).resolve().parents[2] / "shared" / "data" / "translation" / "tico19_en_es_general_health.jsonl"


def _pairs(spec: str) -> tuple[list[str], list[str]]:
    rows = read_rows(spec)
    return [r.fields["en"] for r in rows], [r.fields["es"] for r in rows]


def speed(glossary_spec: str, n: int) -> dict:
    glossary = load_glossary(glossary_spec)
    sources, references = _pairs("demo:medical_en_es.jsonl")
    sources, references = (sources * (n // len(sources) + 1))[:n], (references * (n // len(references) + 1))[:n]
    start = time.perf_counter()
    matcher = TermMatcher(glossary)
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for source, reference in zip(sources, references, strict=True):
            matcher.check(source, reference)
        best = min(best, time.perf_counter() - start)
    return {"terms": len(glossary), "sentences": n, "compile_s": round(compile_s, 4), "check_s": round(best, 4)}


def self_accuracy(glossary_spec: str, spec: str) -> dict:
    sources, references = _pairs(spec)
    accuracy, occurrences, _ = terminology_accuracy(sources, references, load_glossary(glossary_spec))
    return {"data": spec, "sentences": len(sources), "term_accuracy": accuracy, "occurrences": occurrences}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--glossary", default="demo:glossary_en_es.tsv")
    args = parser.parse_args()
    print(json.dumps({"speed": speed(args.glossary, args.n)}))
    for spec in ["demo:medical_en_es.jsonl", *([str(TICO)] if TICO.is_file() else [])]:
        print(json.dumps({"self": self_accuracy(args.glossary, spec)}))


if __name__ == "__main__":
    main()
