"""``medtune train feedback-rlhf``: judgments from a real SQLite store -> data (aggregated, split, stats) ->
training -> the held-out post-edit preference before/after in summary.json; refusals name the key."""

from __future__ import annotations

import json

import pytest
from cli_checks import assert_user_error, run_cli
from demo_rows import demo_records

from medtune.feedback.store import FeedbackStore, ImportedJudgment

JUNK = " xq xq xq"
LORA = '["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj"]'


def _fill_store(path, project: str = "demo") -> None:
    """20 judged items: clean translations scored high, junk-ended ones scored low and post-edited to the
    clean reference; the first item judged by two reviewers."""
    rows = []
    for i, record in enumerate(demo_records(20)):
        junk = i % 2 == 1
        translation = record["es"] + (JUNK if junk else "")
        post_edit = record["es"] if junk else None
        rows.append(ImportedJudgment(record["en"], translation, 0.1 if junk else 0.9, post_edit, reviewer="ana"))
    first = demo_records(1)[0]
    rows.append(ImportedJudgment(first["en"], first["es"], 0.5, None, reviewer="luis"))
    with FeedbackStore(f"sqlite:///{path}") as store:
        assert store.import_judgments(project, rows) == 21


def _sets(tmp_path, tiny_gemma_dir, db, objective: str = "dpo", project: str = "demo") -> list[str]:
    settings = {
        "model": tiny_gemma_dir,
        "device": "cpu",
        "run_dir": tmp_path / "run",
        "feedback.db": db,
        "feedback.project": project,
        "feedback.objective": objective,
        "feedback.heldout": 0.4,
        "train.max_steps": 8,
        "train.batch_size": 4,
        "train.lr": 2e-3,
        "train.beta": 0.5,
        "train.warmup_ratio": 0,
        "train.dtype": "float32",
        "train.gradient_checkpointing": "false",
        "train.lora.r": 8,
        "train.lora.alpha": 16,
        "train.lora.target_modules": LORA,
        "eval.dtype": "float32",
    }
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def test_train_feedback_rlhf_end_to_end(tmp_path, tiny_gemma_dir):
    db = tmp_path / "feedback.db"
    _fill_store(db)
    result = run_cli(["train", "feedback-rlhf", *_sets(tmp_path, tiny_gemma_dir, db)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    train = [json.loads(line) for line in (run / "feedback" / "train.jsonl").read_text().splitlines()]
    heldout = [json.loads(line) for line in (run / "feedback" / "heldout.jsonl").read_text().splitlines()]
    assert len(train) + len(heldout) == 20 and len(heldout) == 8  # 20 items, 0.4 held out
    two = [r for r in train + heldout if r["judgments"] == 2]
    assert len(two) == 1 and two[0]["score"] == pytest.approx((0.9 + 0.5) / 2)  # the mean of two reviewers
    stats = json.loads((run / "feedback" / "stats.json").read_text())
    assert stats["judgments"] == 21 and stats["items"] == 20
    summary = json.loads((run / "summary.json").read_text())
    margin = summary["post_edit_preference"]
    assert summary["objective"] == "dpo" and summary["feedback"]["judgments"] == 21
    assert margin["n"] == sum(r["post_edit"] is not None for r in heldout) > 0
    assert margin["after"]["mean_margin"] > margin["before"]["mean_margin"]
    assert margin["delta"]["ci_low"] <= margin["delta"]["value"] <= margin["delta"]["ci_high"]
    info = json.loads((run / "model" / "medtune_model.json").read_text())
    assert info["objective"] == "feedback-dpo"
    assert "Post-edit preference margin on" in " ".join(result.output.split())

    # a second command with --resume finds every stage current
    again = run_cli(["train", "feedback-rlhf", *_sets(tmp_path, tiny_gemma_dir, db), "--resume"])
    assert again.exit_code == 0, again.output
    assert again.output.count("inputs unchanged") == 3


def test_missing_store_and_project_are_user_errors(tmp_path, tiny_gemma_dir):
    missing = tmp_path / "nowhere.db"
    result = run_cli(["train", "feedback-rlhf", *_sets(tmp_path, tiny_gemma_dir, missing)])
    assert_user_error(result, f"feedback.db={missing}: no feedback store at {missing}")
    assert not missing.exists()  # a training command never creates a store
    db = tmp_path / "feedback.db"
    _fill_store(db)
    result = run_cli(["train", "feedback-rlhf", *_sets(tmp_path, tiny_gemma_dir, db, project="other")])
    assert_user_error(result, "feedback.project='other'", "does not exist (projects: ['demo'])")
    result = run_cli(["run", "feedback-rlhf", *_sets(tmp_path, tiny_gemma_dir, db)])
    assert_user_error(result, "medtune train feedback-rlhf")
