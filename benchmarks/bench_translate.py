"""Translation training, medtune against TRL's SFTTrainer: the benchmark suite's translation_sft workload.

Usage: python benchmarks/bench_translate.py [--quick] [--json PATH]
is ``python -m benchmarks.run --only translation_sft`` (see benchmarks/workloads/translation_sft.py for
what is compared: medtune's loop, TRL with its defaults, TRL at its best). Generation throughput is
the suite's generation workload.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the repository root
    from benchmarks.run import main

    sys.exit(main(["--only", "translation_sft", *sys.argv[1:]]))
