"""``medtune train`` with train.objective=dpo on a preference file, through the CLI, on tiny models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_checks import assert_user_error, run_cli
from demo_rows import demo_records


def _pairs_file(path: Path, n: int = 10) -> Path:
    records = demo_records(2 * n)
    rows = [
        {"prompt": records[i]["en"], "chosen": records[i]["es"], "rejected": records[i + n]["es"]} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _train_args(model: Path, data: Path, run_dir: Path, *extra: str, command: str = "train") -> list:
    sets = [
        f"model={model}",
        f"data.train={data}",
        f"run_dir={run_dir}",
        "device=cpu",
        "train.objective=dpo",
        "train.max_steps=2",
        "train.batch_size=4",
        "train.dtype=float32",
        "train.eval_every=1",
        "train.lora.target_modules=[q_proj,v_proj]",
        "data.dev_size=0.2",
        *extra,
    ]
    return [command, "translate-en-es", *[a for s in sets for a in ("--set", s)]]


def test_train_dpo_on_a_preference_file(tmp_path, tiny_gemma_dir):
    data = _pairs_file(tmp_path / "pairs.jsonl")
    run_dir = tmp_path / "run"
    result = run_cli(_train_args(tiny_gemma_dir, data, run_dir), home=tmp_path / "home")
    assert result.exit_code == 0, result.output
    model = run_dir / "model"
    info = json.loads((model / "medtune_model.json").read_text())
    assert (info["objective"], info["beta"], info["reference_model"]) == ("dpo", 0.1, str(tiny_gemma_dir))
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["train_pairs"] == 8 and metrics["dev_pairs"] == 2
    assert metrics["loss_history"][0][1] == pytest.approx(math.log(2), abs=1e-6)
    assert [step for step, _ in metrics["metric_history"]] == [1, 2]
    stages = json.loads((run_dir / "run.json").read_text())["stages"]
    assert list(stages) == ["data", "train"] and stages["data"]["train"] == 8
    split = [json.loads(line) for line in (run_dir / "data" / "train.jsonl").read_text().splitlines()]
    assert len(split) == 8 and {"prompt", "chosen", "rejected", "id"} <= set(split[0])


def test_user_errors(tmp_path, tiny_gemma_dir):
    home = tmp_path / "home"
    parallel = tmp_path / "parallel.jsonl"
    parallel.write_text(json.dumps({"en": "fever", "es": "fiebre"}) + "\n", encoding="utf-8")
    assert_user_error(
        run_cli(_train_args(tiny_gemma_dir, parallel, tmp_path / "r1"), home=home),
        "'chosen', 'rejected' not found",
        "train.objective=dpo trains on preference pairs",
    )
    data = _pairs_file(tmp_path / "pairs.jsonl")
    assert_user_error(
        run_cli(_train_args(tiny_gemma_dir, data, tmp_path / "r2", command="run"), home=home),
        "medtune run compares the base model with its SFT fine-tune",
        "medtune train RECIPE",
    )
    assert_user_error(
        run_cli(
            _train_args(tiny_gemma_dir, data, tmp_path / "r3", "train.method=full", "train.objective=kto"), home=home
        ),
        "train.method=lora",
    )
