"""Benchmark the data stage on a large parallel corpus: validation, deduplication and split.

Writes a synthetic English/Spanish JSONL of ``--pairs`` pairs (1% exact duplicates, 0.1% empty targets,
documents of 8 sentences) into a temporary folder, then runs
``medtune data validate translate-en-es --set data.train=FILE --set run_dir=TMP`` in a child process and
prints its wall time and peak RSS against issue 10's targets (1,000,000 pairs in <= 3 minutes, <= 2 GB).
Nothing is written into the repository; the temporary folder is removed afterwards.

Usage: python benchmarks/bench_data_scale.py [--pairs 1000000] [--keep]
  --pairs N   how many pairs to generate (default 1,000,000)
  --keep      keep the temporary folder (the corpus and the run folder) and print its path
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0
TARGET_PEAK_MB = 2048.0
SENTENCES_PER_DOC = 8
SUBJECTS = [("The patient", "El paciente"), ("The child", "El niño"), ("The nurse", "La enfermera")]
VERBS = [("takes", "toma"), ("needs", "necesita"), ("refuses", "rechaza"), ("receives", "recibe")]
OBJECTS = [("tablets of ibuprofen", "comprimidos de ibuprofeno"), ("units of insulin", "unidades de insulina")]
TIMES = [("every morning", "cada mañana"), ("after meals", "después de las comidas"), ("at night", "por la noche")]


def write_corpus(path: Path, pairs: int, seed: int = 0) -> None:
    """A JSONL of ``pairs`` rows (en, es, doc_id): unique numbered sentences, with duplicates and bad rows mixed in."""
    rng = random.Random(seed)
    previous = ("", "")
    with path.open("w", encoding="utf-8") as out:
        for i in range(pairs):
            if i and rng.random() < 0.01:  # ~1% repeat the previous pair exactly
                en, es = previous
            else:
                (s_en, s_es), (v_en, v_es) = rng.choice(SUBJECTS), rng.choice(VERBS)
                (o_en, o_es), (t_en, t_es) = rng.choice(OBJECTS), rng.choice(TIMES)
                en = f"{s_en} {v_en} {i % 97 + 1} {o_en} {t_en} (record {i})."
                es = f"{s_es} {v_es} {i % 97 + 1} {o_es} {t_es} (registro {i})."
            previous = (en, es)
            if rng.random() < 0.001:
                es = ""
            row = {"en": en, "es": es, "doc_id": f"doc{i // SENTENCES_PER_DOC}"}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def run_data_stage(corpus: Path, run_dir: Path) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS (MB), exit code and output of ``medtune data validate`` on ``corpus``."""
    command = [sys.executable, "-m", "medtune.cli", "data", "validate", "translate-en-es"]
    command += ["--set", f"data.train={corpus}", "--set", f"run_dir={run_dir}"]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read() if child.stdout else ""
    # wait4 gives this child's own kernel-measured peak RSS; polling with psutil would miss short peaks.
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, child.returncode, output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="medtune-bench-data-"))
    try:
        corpus = folder / "pairs.jsonl"
        start = time.perf_counter()
        write_corpus(corpus, args.pairs)
        size_mb = corpus.stat().st_size / 2**20
        print(f"corpus: {args.pairs:,} pairs, {size_mb:.0f} MB, written in {time.perf_counter() - start:.1f} s")
        seconds, peak_mb, code, output = run_data_stage(corpus, folder / "run")
        print(output.rstrip())
        if code != 0:
            sys.exit(f"medtune data validate failed with exit code {code}")
        scale = 1_000_000 / args.pairs
        print(f"\n{'':<24}{'measured':>12}{'target (1M pairs)':>20}")
        print(f"{'wall time (s)':<24}{seconds:>12.1f}{TARGET_SECONDS:>20.0f}")
        print(f"{'peak RSS (MB)':<24}{peak_mb:>12.0f}{TARGET_PEAK_MB:>20.0f}")
        if scale != 1:
            print(f"(at {args.pairs:,} pairs; linear scaling to 1M would be ~{seconds * scale:.0f} s)")
        ok = seconds <= TARGET_SECONDS / scale and peak_mb <= TARGET_PEAK_MB
        print("within target" if ok else "OVER TARGET")
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
