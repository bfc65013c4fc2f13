"""The translation recipe when the base model takes no few-shot prompt: one base evaluation, recorded as such."""

from __future__ import annotations

import json

from test_task_recipes import check_delta_columns, run_recipe


def test_seq2seq_base_is_scored_once_for_both_columns(tiny_marian_dir, tmp_path):
    run_dir = tmp_path / "marian"
    run_recipe(
        tmp_path / "home",
        "translate-en-es",
        tiny_marian_dir,
        run_dir,
        "train.max_steps=2",
        "eval.limit=4",
        "eval.few_shot=2",
        "data.general=null",
    )
    stages = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]
    assert list(stages) == ["data", "eval_base", "eval_base_zero_shot", "train", "eval_tuned", "report"]
    zero = stages["eval_base_zero_shot"]
    assert zero["same_as"] == "eval_base" and "sequence-to-sequence" in zero["reason"]
    assert not (run_dir / "eval" / "eval_base_zero_shot").exists()  # not scored twice
    assert stages["eval_base"]["test"]["few_shot"] == 0  # a translation model gets the bare source sentence
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    for metric in summary["metrics"]:
        assert metric["base"] == metric["base_zero_shot"] and metric["headline_base"] == "zero_shot"
        check_delta_columns(metric)
    assert any("one evaluation: a sequence-to-sequence" in note for note in summary["notes"])
    assert summary["forgetting"]["checked"] is False
