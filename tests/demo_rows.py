"""Rows of the bundled demo corpus for tests (a plain module: ``from conftest import`` is ambiguous
once a test folder has its own conftest.py)."""

from __future__ import annotations

import json

from medtune.data.demo import DEMO_DIR

DEMO_MEDICAL = DEMO_DIR / "medical_en_es.jsonl"


def demo_records(n: int | None = None) -> list[dict]:
    """The first ``n`` rows (all when None) of the bundled medical EN-ES corpus."""
    lines = DEMO_MEDICAL.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n] if line.strip()]
