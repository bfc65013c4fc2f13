"""``medtune train feedback-reward``: judgments from a real store (SQLite) -> per-item means -> held-out
split -> a reward model whose held-out figures land in metrics.json; ``medtune feedback score --project``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, run_cli
from reward_toys import toy_items
from scipy import stats

from medtune.feedback.reward import HELDOUT_SCORES, RewardModel
from medtune.feedback.store import FeedbackStore, ImportedJudgment
from medtune.feedback.training_data import item_feedback, split_heldout

PROJECT = "toy"


@pytest.fixture(scope="module")
def judged_store(tmp_path_factory) -> str:
    """A SQLite store holding 64 judged toy items; every fourth judged by a second reviewer (0.1 apart)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'feedback.db'}"
    rows = []
    for k, item in enumerate(toy_items(64)):
        second = k % 4 == 1
        first_score = min(1.0, item.score + 0.05) if second else item.score
        rows.append(ImportedJudgment(item.source, item.translation, first_score, reviewer="ana"))
        if second:
            rows.append(ImportedJudgment(item.source, item.translation, item.score - 0.05, reviewer="ben"))
    with FeedbackStore(url) as store:
        store.import_judgments(PROJECT, rows)
    return url


def _train_args(url: str, tiny_gemma_dir: Path, tmp: Path) -> list[str]:
    settings = {
        "feedback.db": url,
        "feedback.project": PROJECT,
        "feedback.heldout": 0.25,
        "model": tiny_gemma_dir,
        "device": "cpu",
        "run_dir": tmp / "run",
        "output_dir": tmp / "reward",
        "train.dtype": "float32",
        "train.max_steps": 30,
        "train.lr": 0.01,
        "train.eval_every": 100,
    }
    return ["train", "feedback-reward"] + [arg for k, v in settings.items() for arg in ("--set", f"{k}={v}")]


def test_train_feedback_reward_from_the_store(judged_store, tiny_gemma_dir, tmp_path):
    result = run_cli(_train_args(judged_store, tiny_gemma_dir, tmp_path))
    assert result.exit_code == 0, result.output
    with FeedbackStore(judged_store) as store:
        judgments = store.judgments(PROJECT)
    train, heldout = split_heldout(item_feedback(judgments), 0.25, 42)
    assert (len(train), len(heldout)) == (48, 16)
    written = [json.loads(line) for line in (tmp_path / "run" / "feedback" / "heldout.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in written] == [i.item_id for i in heldout]
    doubled = [r for r in written + [i.to_record() for i in train] if r["judgments"] == 2]
    assert doubled and all(r["score"] == pytest.approx(sum(r["scores"]) / 2) for r in doubled)  # the mean
    metrics = json.loads((tmp_path / "reward" / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["train_items"], metrics["heldout_items"]) == (48, 16)
    rows = [json.loads(line) for line in (tmp_path / "reward" / HELDOUT_SCORES).read_text().splitlines()]
    assert [r["score"] for r in rows] == pytest.approx([i.score for i in heldout])
    spearman = stats.spearmanr([r["reward"] for r in rows], [r["score"] for r in rows]).statistic
    assert metrics["spearman"] == pytest.approx(spearman) and spearman > 0.7
    assert "spearman" in result.output and "pairwise_accuracy" in result.output  # the printed table
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert run["stages"]["train"]["spearman"] == pytest.approx(spearman)

    # --resume: both stages are current, nothing is read or trained again
    before = (tmp_path / "reward" / "metrics.json").read_bytes()
    result = run_cli([*_train_args(judged_store, tiny_gemma_dir, tmp_path), "--resume"])
    assert result.exit_code == 0, result.output
    assert "Stage data: inputs unchanged" in result.output and "Stage train: inputs unchanged" in result.output
    assert (tmp_path / "reward" / "metrics.json").read_bytes() == before

    # score every item of the project straight from the store
    out = tmp_path / "scored.jsonl"
    args = ["feedback", "score", "--model", tmp_path / "reward", "--db", judged_store, "--project", PROJECT]
    result = run_cli([*args, "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    with FeedbackStore(judged_store) as store:
        items = store.items(PROJECT)
    assert [r["id"] for r in scored] == [i.id for i in items]
    expected = RewardModel.load(str(tmp_path / "reward"), device="cpu").score(
        [(i.source, i.translation) for i in items]
    )
    assert [r["reward"] for r in scored] == expected


def test_an_unknown_project_names_the_project_and_the_store(judged_store, tiny_gemma_dir, tmp_path):
    args = _train_args(judged_store, tiny_gemma_dir, tmp_path) + ["--set", "feedback.project=nobody"]
    result = run_cli(args)
    assert_user_error(result, "feedback.project='nobody'", "does not exist (projects: ['toy'])", judged_store)
    assert not (tmp_path / "reward").exists()


def test_a_missing_sqlite_file_is_refused_not_created(tiny_gemma_dir, tmp_path):
    missing = tmp_path / "nowhere.db"
    result = run_cli(_train_args(str(missing), tiny_gemma_dir, tmp_path))
    assert_user_error(result, f"feedback.db={missing}: no feedback store at {missing}")
    assert not missing.exists()


def test_medtune_run_points_to_medtune_train(tmp_path):
    result = run_cli(["run", "feedback-reward", "--set", f"run_dir={tmp_path / 'run'}"])
    assert_user_error(result, "trains a reward model", "medtune train feedback-reward")
    assert not (tmp_path / "run").exists()
