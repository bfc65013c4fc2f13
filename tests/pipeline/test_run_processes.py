"""``medtune run`` under ``accelerate launch`` with 2 processes (gloo on CPU) gives the run of one process.

Issue 10's third "Done when".

One run folder with one ``run.json`` and one report; every test sentence translated exactly once per
evaluation, the base model's translations and metrics equal to a single process's, and training's
per-step losses equal to one process with the doubled batch.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_checks import run_cli
from launching import launch_command, run_child

STEPS = 2
PAIRS = 28  # data.test_size 0.25: 7 test sentences, shared 4 + 3 by the two processes


def _sets(model: Path, pairs: Path, run_dir: Path, batch_size: int) -> list[str]:
    values = [
        f"model={model}",
        f"data.train={pairs}",
        "data.general=null",
        "data.test_size=0.25",
        "data.dev_size=0",
        f"run_dir={run_dir}",
        f"output_dir={run_dir / 'model'}",
        f"train.max_steps={STEPS}",
        f"train.batch_size={batch_size}",
        "train.max_length=96",
        "train.lr=5e-3",
        "eval.few_shot=1",
        "eval.batch_size=1",  # each sentence decoded alone: the same computation in any process
        "eval.max_new_tokens=8",
    ]
    return [a for v in values for a in ("--set", v)]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, demo_pairs) -> Path:
    path = tmp_path_factory.mktemp("run-processes") / "pairs.jsonl"
    rows = [json.dumps({"en": p.src, "es": p.tgt}) for p in demo_pairs[:PAIRS]]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _outputs(run_dir: Path, stage: str) -> list[dict]:
    path = run_dir / "eval" / stage / "test" / "outputs.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``medtune ARGS`` in 2 processes on CPU (gloo) under ``accelerate launch`` with ``cpu-2proc.yaml``."""
    return run_child([*launch_command(module=True), "medtune.cli", *args], cwd=cwd)


def test_run_under_two_processes_gives_one_run_with_every_item_evaluated_once(
    tmp_path, tiny_gemma_dir, pairs_file, medtune_home
):
    single, double = tmp_path / "one" / "run", tmp_path / "two" / "run"
    result = run_cli(["run", "translate-en-es", *_sets(tiny_gemma_dir, pairs_file, single, 2 * 2)], home=medtune_home)
    assert result.exit_code == 0, result.output

    done = _launch(["run", "translate-en-es", *_sets(tiny_gemma_dir, pairs_file, double, 2)], tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # one run: one run.json, one report, nothing written beside the run folder or left set aside
    assert sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("run.json")) == [
        Path("run/run.json")
    ]
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["run"]
    assert not [p for p in double.rglob("*") if ".previous" in p.name or p.name.endswith(".tmp")]
    assert (double / "report.html").is_file() and (double / "report.md").is_file()
    assert done.stdout.count("before vs after") == 1  # the table, printed by the main process only
    stages = json.loads((double / "run.json").read_text(encoding="utf-8"))["stages"]
    assert list(stages) == ["data", "eval_base", "eval_base_zero_shot", "train", "eval_tuned", "report"]

    # the same data split; every test sentence translated exactly once by each evaluation, in order
    for split in ("train.jsonl", "test.jsonl"):
        assert (double / "data" / split).read_text() == (single / "data" / split).read_text()
    test_ids = [row["id"] for row in _outputs(single, "eval_base")]
    assert len(test_ids) == len(set(test_ids)) == stages["data"]["test"] == 7
    for stage in ("eval_base", "eval_base_zero_shot", "eval_tuned"):
        assert [row["id"] for row in _outputs(double, stage)] == test_ids, stage
        assert stages[stage]["test"]["n"] == 7

    # the base model's evaluations equal a single process's, translation by translation
    one = json.loads((single / "run.json").read_text(encoding="utf-8"))["stages"]
    for stage in ("eval_base", "eval_base_zero_shot"):
        assert [r["output"] for r in _outputs(double, stage)] == [r["output"] for r in _outputs(single, stage)]
        for metric in ("bleu", "chrf", "ter", "n", "few_shot"):
            assert stages[stage]["test"][metric] == one[stage]["test"][metric], (stage, metric)
    # 2 processes x batch 2 trained as 1 process x batch 4 (the recipe trains in bf16 on a CPU with AMX,
    # LoRA products included: bf16 rounding, so relative 1e-3; tests/train/test_ddp.py holds float32 to 1e-4)
    losses = [loss for _, loss in stages["train"]["loss_history"]]
    assert losses == pytest.approx([loss for _, loss in one["train"]["loss_history"]], rel=1e-3, abs=1e-4)
    assert len(losses) == STEPS


def test_a_stage_failing_on_the_main_process_stops_every_process(tmp_path, tiny_gemma_dir, pairs_file, medtune_home):
    run_dir = tmp_path / "run"
    args = [*_sets(tiny_gemma_dir, pairs_file, run_dir, 2), "--set", "data.test_size=0.99"]
    done = _launch(["run", "translate-en-es", *args], tmp_path)
    assert done.returncode != 0  # no process waits forever for the one that failed
    output = done.stdout + done.stderr
    assert output.count("error: Too few pairs to split") == 1  # the main process says why, once
    # medtune's errors reach the user as messages (the launcher adds its own report of the exit codes)
    assert not [line for line in output.splitlines() if line.strip().startswith('File "') and "medtune" in line]
    assert json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"] == {}  # nothing recorded as done
