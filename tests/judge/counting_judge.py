"""A deterministic judge for the resume tests: the score is the answer's length / 100, and calls are counted.

It scores plain Python values (no model), so it is not a stand-in for a runnable part: it is a Judge.
With ``kill_after`` set it kills its own process (SIGKILL: no cleanup, no flush) once that many items were scored.
"""

from __future__ import annotations

import os
import signal

from medtune.judge.base import JudgeItem, Judgment

# Seven items whose answers have lengths 1..7, so their scores are 0.01..0.07.
SAMPLE_ITEMS = [JudgeItem(f"i{n}", f"question {n}", "x" * n) for n in range(1, 8)]


class CountingJudge:
    name = "counting"

    def __init__(self, batch_size: int = 2, kill_after: int | None = None, log_path: str | None = None):
        self.batch_size = batch_size
        self.kill_after = kill_after
        self.log_path = log_path  # one line per scored item id, appended before the judgment is returned
        self.scored: list[str] = []

    def fingerprint(self) -> str:
        return "counting-v1"

    def score(self, items):
        if self.kill_after is not None and len(self.scored) >= self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        self.scored += [item.id for item in items]
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write("".join(item.id + "\n" for item in items))
        return [
            Judgment(item.id, len(item.answer) / 100, {"length": len(item.answer) / 100}, "by length") for item in items
        ]
