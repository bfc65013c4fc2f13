"""Judgments kept in an append-only JSONL file, keyed by a hash of what decides the score.

A row is written as soon as its batch is judged (flushed and fsynced), so a killed run loses no
finished judgment; a kill in the middle of a write leaves at most one torn last line, which the
next reader drops.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError
from medtune.judge.base import JudgeItem


def judgment_key(item: JudgeItem, fingerprint: str) -> str:
    """sha256 of the item's judged content (prompt, answer, gold, reference, key points) and the judge's fingerprint.

    The fingerprint covers the judge's model, rubric and weights, so a changed rubric never reuses a score.
    """
    payload = [item.prompt, item.answer, item.gold, item.reference, list(item.key_points), fingerprint]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


def pair_key(prompt: str, first: str, second: str, reference: str | None, fingerprint: str) -> str:
    """sha256 of one pairwise comparison (answers in the order given) and the judge's fingerprint."""
    payload = ["pairwise", prompt, first, second, reference, fingerprint]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


class JsonlLog:
    """An append-only JSONL file of records; each ``append`` is durable once it returns."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = self._read()

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            tail = raw[raw.rfind(b"\n") + 1 :]
            try:
                json.loads(tail)
            except ValueError:  # the last line, torn by a kill mid-write: drop it
                raw = raw[: len(raw) - len(tail)]
                with self.path.open("r+b") as handle:
                    handle.truncate(len(raw))
        records = []
        for number, line in enumerate(raw.decode("utf-8").split("\n"), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise MedtuneError(
                    f"{self.path}:{number}: not a JSON line. This file is written by medtune judge; delete it "
                    "(its judgments are then recomputed) or restore it."
                ) from None
        return records

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append rows and make them durable (flush + fsync) before returning."""
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the file's rows atomically (a temporary file renamed over it)."""
        partial = self.path.with_name(self.path.name + ".partial")
        with partial.open("w", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)
        self.records = list(records)
