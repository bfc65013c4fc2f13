"""The feedback pipelines under ``accelerate launch`` with 2 processes (gloo on CPU) train as one process with
the doubled batch: the same per-step losses, one run.json, the model and its files written once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import run_cli
from launching import launch_command, run_ok
from test_feedback_reward_recipe import _train_args, judged_store  # noqa: F401 (judged_store: a fixture)
from test_feedback_rlhf_recipe import _fill_store, _sets

from medtune.errors import MedtuneError


def _losses(metrics_file: Path) -> list[float]:
    return [loss for _, loss in json.loads(metrics_file.read_text(encoding="utf-8"))["loss_history"]]


def _launch_medtune(args: list[str], cwd: Path):
    return run_ok([*launch_command(module=True), "medtune.cli", *map(str, args)], cwd=cwd)


def test_feedback_rlhf_under_two_processes_trains_as_one_with_the_doubled_batch(tmp_path, tiny_gemma_dir):
    db = tmp_path / "feedback.db"
    _fill_store(db)
    one, two = tmp_path / "one", tmp_path / "two"
    result = run_cli(["train", "feedback-rlhf", *_sets(one, tiny_gemma_dir, db)])  # batch 4, one process
    assert result.exit_code == 0, result.output
    done = _launch_medtune(
        ["train", "feedback-rlhf", *_sets(two, tiny_gemma_dir, db), "--set", "train.batch_size=2"], tmp_path
    )
    reference = _losses(one / "run" / "model" / "metrics.json")
    assert len(reference) == 8 and len(set(reference)) > 1
    assert _losses(two / "run" / "model" / "metrics.json") == pytest.approx(reference, abs=1e-4)
    runs = [json.loads((folder / "run" / "run.json").read_text(encoding="utf-8")) for folder in (one, two)]
    assert list(runs[1]["stages"]) == list(runs[0]["stages"]) == ["data", "train", "eval"]
    for name in ("train.jsonl", "heldout.jsonl"):  # the data stage ran once, as in one process
        assert (two / "run" / "feedback" / name).read_text() == (one / "run" / "feedback" / name).read_text()
    margins = [json.loads((f / "run" / "summary.json").read_text())["post_edit_preference"] for f in (one, two)]
    assert margins[1]["n"] == margins[0]["n"] > 0
    assert margins[1]["after"]["mean_margin"] == pytest.approx(margins[0]["after"]["mean_margin"], rel=1e-3)
    output = " ".join((done.stdout + done.stderr).split())
    assert output.count("Post-edit preference margin on") == 1  # the main process reports, once


def test_feedback_reward_under_two_processes_trains_as_one_with_the_doubled_batch(
    judged_store,  # noqa: F811 (the imported fixture)
    tiny_gemma_dir,
    tmp_path,
):
    one, two = tmp_path / "one", tmp_path / "two"
    # one epoch of the 48 training items (6 steps of 8): over several epochs at the test's lr 0.01 the
    # float32 summation order (2 processes add their halves) drifts the losses by ~1e-3 after step 12
    steps = ["--set", "train.max_steps=6"]
    result = run_cli([*_train_args(judged_store, tiny_gemma_dir, one), *steps, "--set", "train.batch_size=8"])
    assert result.exit_code == 0, result.output
    _launch_medtune([*_train_args(judged_store, tiny_gemma_dir, two), *steps, "--set", "train.batch_size=4"], tmp_path)
    reference = _losses(one / "reward" / "metrics.json")
    assert len(reference) == 6 and len(set(reference)) > 1
    assert _losses(two / "reward" / "metrics.json") == pytest.approx(reference, abs=1e-4)
    metrics = [json.loads((f / "reward" / "metrics.json").read_text()) for f in (one, two)]
    assert metrics[1]["spearman"] == pytest.approx(metrics[0]["spearman"], abs=1e-2)
    scores = [(f / "reward" / "heldout_scores.jsonl").read_text().splitlines() for f in (one, two)]
    assert len(scores[1]) == len(scores[0]) == 16  # written once, every held-out item once
    assert not list((two / "reward").glob("checkpoints"))


def test_full_training_refuses_several_processes_on_every_process(monkeypatch):
    from medtune.pipeline.full_training import full_training_stages
    from medtune.recipes.loader import load_recipe
    from medtune.runs import RunFolder

    monkeypatch.setattr("medtune.train.distributed.world", lambda: (1, 2))  # the second of two processes
    recipe = load_recipe("full-training", ["feedback.project=p"])
    with pytest.raises(MedtuneError, match="runs in one process, but 2 were started.*without the launcher"):
        full_training_stages(recipe, RunFolder(Path("unused"), recipe.name))
