"""``medtune feedback score``: one reward per row, ids and other columns kept, equal to RewardModel.score;
bad input named by file, line and column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, file_checksums, run_cli
from reward_toys import toy_items, toy_recipe

from medtune.feedback.reward import RewardModel, train_reward_model


@pytest.fixture(scope="module")
def reward_dir(tiny_gemma_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("score-cli") / "reward"
    train_reward_model(toy_recipe(tiny_gemma_dir, max_steps=5), toy_items(24), toy_items(8, 24), str(out), log=print)
    return out


def _rows() -> list[dict]:
    return [
        {"id": f"doc-{k}", "source": item.source, "translation": item.translation, "system": "toy"}
        for k, item in enumerate(toy_items(7, start=40))
    ]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_scores_keep_ids_and_columns_and_equal_the_python_api(reward_dir, tmp_path):
    rows = _rows()
    data = _write_jsonl(tmp_path / "mt.jsonl", rows)
    out = tmp_path / "scored.jsonl"
    result = run_cli(["feedback", "score", "--model", reward_dir, "--data", data, "--out", out, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = RewardModel.load(str(reward_dir), device="cpu").score([(r["source"], r["translation"]) for r in rows])
    assert [{k: v for k, v in r.items() if k != "reward"} for r in scored] == rows  # every row, in order, whole
    assert [r["reward"] for r in scored] == expected
    assert len(set(expected)) > 1  # the rows get different rewards


def test_csv_with_other_column_names_and_csv_out(reward_dir, tmp_path):
    rows = [{"key": r["id"], "English": r["source"], "Spanish": r["translation"]} for r in _rows()[:3]]
    data = tmp_path / "mt.csv"
    with data.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["key", "English", "Spanish"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "scored.csv"
    args = ["feedback", "score", "--model", reward_dir, "--data", data, "--out", out, "--device", "cpu"]
    result = run_cli([*args, "--src-col", "English", "--mt-col", "Spanish", "--id-col", "key", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as fh:
        scored = list(csv.DictReader(fh))
    assert [r["key"] for r in scored] == [r["key"] for r in rows]
    expected = RewardModel.load(str(reward_dir), device="cpu").score([(r["English"], r["Spanish"]) for r in rows])
    assert [float(r["reward"]) for r in scored] == pytest.approx(expected, abs=1e-6)


def test_a_row_without_the_translation_column_is_named_with_file_and_line(reward_dir, tmp_path):
    rows = _rows()[:3]
    rows[1] = {"id": "doc-1", "source": rows[1]["source"], "mt": "x"}
    data = _write_jsonl(tmp_path / "bad.jsonl", rows)
    out = tmp_path / "scored.jsonl"
    result = run_cli(["feedback", "score", "--model", reward_dir, "--data", data, "--out", out])
    assert_user_error(result, f"{data}:2", "column 'translation' (--mt-col) is missing", "['id', 'mt', 'source']")
    assert not out.exists()


def test_existing_out_is_kept_unless_overwrite(reward_dir, tmp_path):
    data = _write_jsonl(tmp_path / "mt.jsonl", _rows()[:2])
    out = tmp_path / "mine.jsonl"
    out.write_text("my own notes\n", encoding="utf-8")
    before = file_checksums(tmp_path)
    result = run_cli(["feedback", "score", "--model", reward_dir, "--data", data, "--out", out])
    assert_user_error(result, f"--out {out} already exists", "--overwrite")
    assert file_checksums(tmp_path) == before
    result = run_cli(["feedback", "score", "--model", reward_dir, "--data", data, "--out", out, "--overwrite"])
    assert result.exit_code == 0 and len(out.read_text(encoding="utf-8").splitlines()) == 2


def test_a_model_folder_that_is_not_a_reward_model_is_refused(tiny_gemma_dir, tmp_path):
    data = _write_jsonl(tmp_path / "mt.jsonl", _rows()[:1])
    result = run_cli(["feedback", "score", "--model", tiny_gemma_dir, "--data", data, "--out", tmp_path / "o.jsonl"])
    assert_user_error(result, "is not a medtune reward model (no reward_model.json)", "medtune train feedback-reward")


def test_data_or_project_exactly_one(reward_dir, tmp_path):
    result = run_cli(["feedback", "score", "--model", reward_dir, "--out", tmp_path / "o.jsonl"])
    assert_user_error(result, "Give exactly one of --data", "got neither")
    result = run_cli(["feedback", "score", "--model", reward_dir, "--out", tmp_path / "o.txt", "--data", "x.jsonl"])
    assert_user_error(result, "expected a .jsonl, .csv or .tsv file name")
