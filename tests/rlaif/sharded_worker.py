"""Candidate generation then judging on the tiny Gemma, in 1 process or as one of several (torchrun).

Usage: python sharded_worker.py MODEL_DIR OUT_DIR  — writes OUT_DIR/candidates.jsonl, judgments.jsonl
(the main process only) and returned-rank<R>.json (what each process's judge_file returned).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medtune.judge import build_judge, judge_file
from medtune.models.loading import load_model
from medtune.pipeline.rlaif import judge_items
from medtune.rlaif.candidates import generate_candidates, read_candidates
from medtune.rlaif.prompt_items import PromptItem
from medtune.train.distributed import world

QUESTIONS = [
    ("What lowers a fever?", "Paracetamol or ibuprofen lowers a fever.", ("paracetamol", "fever")),
    ("How should a sprained ankle be treated?", "Rest, ice, compression and elevation.", ("rest", "ice")),
    ("Hi", "Hello, how can I help?", ()),
    ("Is ibuprofen safe with food?", "Yes, taking it with food protects the stomach.", ("food", "stomach")),
    ("What is a normal adult heart rate?", "Between 60 and 100 beats per minute at rest.", ("60", "100")),
    ("Why drink water?", "Water keeps the body hydrated.", ("hydrated",)),
    ("Can a child take aspirin?", "No, aspirin can cause Reye's syndrome in children.", ("Reye",)),
]  # 7 prompts: 2 processes share them 4 + 3, so the second one sits out the last round


def quiet(_message: str) -> None:
    pass


def main(model_dir: str, out_dir: str) -> None:
    rank, _ = world()
    out = Path(out_dir)
    loaded = load_model(model_dir, dtype="float32", device="cpu", log=quiet)
    prompts = [PromptItem(f"p{i}", q, reference=r, key_points=k) for i, (q, r, k) in enumerate(QUESTIONS)]
    generate_candidates(
        prompts,
        out / "candidates.jsonl",
        n=2,
        temperature=1.0,
        top_p=0.95,
        max_new_tokens=6,
        seed=7,
        loaded=loaded,
        batch_size=4,  # 2 prompts x 2 samples a round
        progress=None,
        log=quiet,
    )
    judge = build_judge("reference", task="qa", log=quiet)
    items = judge_items(read_candidates(out / "candidates.jsonl"))
    judgments = judge_file(judge, items, out / "judgments.jsonl", progress=None, log=quiet, batch_size=3)
    records = [j.to_record() for j in judgments]
    (out / f"returned-rank{rank}.json").write_text(json.dumps(records), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:3])
