"""Benchmark continued pre-training on a raw-text folder larger than memory: data stage in full, then 20 steps.

Writes a synthetic folder of medical-style .txt documents (``--gb`` in all; generated here from word
lists, never copied from a data set) into a temporary folder, and one ten times smaller, then runs
``medtune train dapt --set data.train=FOLDER --set train.max_steps=20 --set data.dev_size=0`` on each in
a child process (the embedded model) and prints wall time and peak RSS of both. Bounded memory means the
two peaks are about the same: the corpus is streamed through the data stage and tokenised into a
memory-mapped cache in the run folder, so memory holds the model, not the text. ``data.dev_size=0``
because a dev set of 5% of a gigabyte would be scored twice in 20 steps, which times the model, not the data.
Nothing is written into the repository; the temporary folder is removed afterwards.

Usage: python benchmarks/bench_text_scale.py [--gb 1] [--steps 20] [--keep]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUBJECTS = ["The patient", "A 54-year-old woman", "The child", "An elderly man", "The nurse", "The resident"]
FINDINGS = ["a persistent cough", "chest pain on exertion", "fever and chills", "a swollen left ankle",
            "shortness of breath", "blurred vision", "recurrent headaches", "abdominal tenderness"]  # fmt: skip
DRUGS = ["amoxicillin", "metformin", "ibuprofen", "lisinopril", "atorvastatin", "insulin glargine",
         "salbutamol", "omeprazole", "warfarin", "levothyroxine"]  # fmt: skip
ACTIONS = ["was started on", "was advised to stop", "tolerated", "reported side effects from", "doubled the dose of"]
ADVICE = ["Follow-up is planned in {n} weeks.", "Blood pressure was {n}/80 mmHg.", "HbA1c fell to {n}.1%.",
          "The wound was dressed and reviewed after {n} days.", "Renal function was checked at {n} months.",
          "She was counselled on diet, exercise and smoking cessation.", "No allergies were recorded."]  # fmt: skip


def sentence_pool(rng: random.Random, size: int = 20_000) -> list[str]:
    """Varied clinical-note sentences built from the word lists above."""
    pool = []
    for _ in range(size):
        first = f"{rng.choice(SUBJECTS)} presented with {rng.choice(FINDINGS)} and {rng.choice(FINDINGS)}."
        second = f"{rng.choice(SUBJECTS)} {rng.choice(ACTIONS)} {rng.choice(DRUGS)} {rng.randint(1, 4) * 5} mg."
        third = rng.choice(ADVICE).format(n=rng.randint(2, 12))
        pool.append(" ".join(rng.sample([first, second, third], k=rng.randint(1, 3))))
    return pool


def write_folder(folder: Path, total_bytes: int, seed: int = 0) -> tuple[int, int]:
    """Write .txt documents (each 20-200 kB, each opened by a unique header) until ``total_bytes``;
    return (documents, bytes)."""
    rng = random.Random(seed)
    pool = sentence_pool(rng)
    folder.mkdir(parents=True, exist_ok=True)
    written = documents = 0
    while written < total_bytes:
        target = min(rng.randint(20_000, 200_000), total_bytes - written)
        header = f"Clinical notes, record {documents} (ward {rng.randint(1, 40)}).\n\n"
        sentences = rng.choices(pool, k=max(1, target // 110))
        paragraphs = [" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6)]
        text = header + "\n\n".join(paragraphs) + "\n"
        (folder / f"notes_{documents:06d}.txt").write_text(text, encoding="utf-8")
        written += len(text.encode("utf-8"))
        documents += 1
    return documents, written


def run_train(folder: Path, work: Path, steps: int) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS (MB), exit code and output of ``medtune train dapt`` on ``folder``."""
    command = [sys.executable, "-m", "medtune.cli", "train", "dapt"]
    for setting in (f"data.train={folder}", f"train.max_steps={steps}", "data.dev_size=0",
                    f"run_dir={work / 'run'}", f"output_dir={work / 'model'}"):  # fmt: skip
        command += ["--set", setting]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read() if child.stdout else ""
    # wait4 gives this child's own kernel-measured peak RSS; polling with psutil would miss short peaks.
    _, status, usage = os.wait4(child.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=1.0, help="size of the large folder in GB (default 1)")
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medtune-bench-text-"))
    rows = []
    try:
        for label, gb in (("large", args.gb), ("10x smaller", args.gb / 10)):
            folder = root / label.replace(" ", "_") / "corpus"
            start = time.perf_counter()
            documents, size = write_folder(folder, int(gb * 1e9))
            print(
                f"{label}: {documents:,} documents, {size / 1e6:,.0f} MB, written in {time.perf_counter() - start:.0f} s"
            )
            seconds, peak_mb, code, output = run_train(folder, folder.parent, args.steps)
            print("\n".join(line for line in output.splitlines() if "Token cache" in line or "Packed" in line))
            if code != 0:
                print(output[-3000:])
                sys.exit(f"medtune train failed with exit code {code}")
            shutil.rmtree(folder.parent / "run" / "token_cache", ignore_errors=True)  # free the disk for the next
            rows.append((label, size / 1e6, documents, seconds, peak_mb))
        print(f"\n{'folder':<14}{'MB':>10}{'documents':>12}{'wall s':>10}{'peak RSS MB':>14}")
        for label, mb, documents, seconds, peak in rows:
            print(f"{label:<14}{mb:>10,.0f}{documents:>12,}{seconds:>10.1f}{peak:>14,.0f}")
        ratio = rows[0][4] / rows[1][4]
        print(f"peak RSS large / 10x smaller: {ratio:.2f} (bounded memory: about 1; the corpus grew 10x)")
    finally:
        if args.keep:
            print(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
