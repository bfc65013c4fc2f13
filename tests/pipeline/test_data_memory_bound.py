"""The translation data stage's memory does not grow with the corpus's text: a CI-sized stand-in for the
1,000,000-pair benchmark (benchmarks/bench_data_scale.py).

``medtune data validate`` runs in a child process on N and on 4N pairs; the kernel's peak RSS of each
(``os.wait4``) is compared. Why this criterion is robust: both runs share everything fixed (interpreter,
imports, recipe, demo files), so the difference of their peaks is what the 3N extra pairs cost, and the
figure is a count of bytes, not a timing. Measured on this corpus: holding the rows as Python objects
(medtune before it streamed) costs ~1,370 bytes per extra pair; streamed, ~175 (its digests, spool offset
and split bookkeeping). The bound sits between the two with room on both sides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SMALL = 20_000
MAX_BYTES_PER_EXTRA_PAIR = 600  # the in-memory stage needed ~1,370, the streamed one ~175


def _write_corpus(path: Path, pairs: int) -> None:
    """Unique numbered pairs in documents of 8 sentences, about as long as real leaflet sentences."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(pairs):
            en = f"The patient takes {i % 97 + 1} tablets of ibuprofen after meals, as in record {i} of the leaflet."
            es = (
                f"El paciente toma {i % 97 + 1} comprimidos de ibuprofeno después de comer, registro {i} del prospecto."
            )
            out.write(json.dumps({"en": en, "es": es, "doc_id": f"doc{i // 8}"}, ensure_ascii=False) + "\n")


def _peak_rss(corpus: Path, run_dir: Path) -> int:
    """Peak RSS in bytes of ``medtune data validate`` on ``corpus``, once it has split every pair."""
    command = [sys.executable, "-m", "medtune.cli", "data", "validate", "translate-en-es"]
    for setting in (f"data.train={corpus}", f"run_dir={run_dir}", "data.general=null", "data.glossary=null"):
        command += ["--set", setting]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert child.stdout is not None
    output = child.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(child.pid, 0)  # this child's own kernel-measured peak RSS
    assert os.waitstatus_to_exitcode(status) == 0, output
    lines = sum(1 for _ in (run_dir / "data" / "train.jsonl").open(encoding="utf-8"))
    assert lines > 0.8 * int(corpus.stem.split("-")[1])  # the stage really went through the corpus
    return usage.ru_maxrss * 1024


def test_peak_memory_grows_far_less_than_the_corpus(tmp_path):
    peaks = {}
    for pairs in (SMALL, 4 * SMALL):
        corpus = tmp_path / f"pairs-{pairs}.jsonl"
        _write_corpus(corpus, pairs)
        peaks[pairs] = _peak_rss(corpus, tmp_path / f"run-{pairs}")
    per_extra_pair = (peaks[4 * SMALL] - peaks[SMALL]) / (3 * SMALL)
    assert per_extra_pair < MAX_BYTES_PER_EXTRA_PAIR, (peaks, per_extra_pair)
