"""``medtune run translate-rlaif`` under ``accelerate launch`` with 2 processes (gloo on CPU) gives the run of one.

One run folder with one ``run.json`` and one report; every held-out item evaluated exactly once per
model. The sharded stages write what one process writes: the same run re-run in one process from its
generate stage (on the same SFT model: two processes' summed gradients differ from one's in the last
bits, which Adam's steps on the tiny model magnify) writes the same candidates, judgments, pairs and
evaluations of base and SFT, byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_checks import run_cli
from test_rlaif import STAGES, TINY
from test_run_processes import _launch

SAME_IN_ONE_PROCESS = (
    Path("candidates", "candidates.jsonl"),
    Path("judge", "judgments.jsonl"),
    Path("pairs", "pairs.jsonl"),
    Path("pairs", "train.jsonl"),
    Path("pairs", "heldout.jsonl"),
    Path("eval", "base", "test", "outputs.jsonl"),
    Path("eval", "sft", "test", "outputs.jsonl"),
    Path("eval", "sft", "answers.jsonl"),
)


def _args(model: Path, run_dir: Path) -> list[str]:
    values = [
        f"model={model}",
        f"run_dir={run_dir}",
        f"output_dir={run_dir / 'model'}",
        *TINY,
        "data.sample=80",
        "pairs.heldout=0.5",  # two pairs or more always leave one held out for preference accuracy
        "generate.max_new_tokens=8",
        "eval.max_new_tokens=8",
        "eval.batch_size=1",  # each sentence decoded alone: the same computation in any process
    ]
    return ["run", "translate-rlaif", *[a for v in values for a in ("--set", v)]]


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_rlaif_run_under_two_processes_writes_the_files_of_one(tmp_path, tiny_gemma_dir, medtune_home):
    run_dir = tmp_path / "two" / "run"
    done = _launch(_args(tiny_gemma_dir, run_dir), tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:-2000]

    # one run: one run.json, one report, nothing beside the run folder, nothing set aside or half-written
    assert [p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("run.json")] == [Path("run/run.json")]
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["run"]
    assert not [p for p in run_dir.rglob("*") if ".previous" in p.name or p.name.endswith(".tmp")]
    assert (run_dir / "report.html").is_file() and (run_dir / "report.md").is_file()
    assert (done.stdout + done.stderr).count("win-rate DPO vs SFT") == 1  # told by the main process only
    stages = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]
    assert list(stages) == STAGES
    assert len(stages["sft"]["loss_history"]) == len(stages["dpo"]["loss_history"]) == 2

    # every held-out item evaluated exactly once per model; every held-out prompt answered once
    evaluation = stages["eval"]
    test_ids = _ids(run_dir / "eval" / "base" / "test" / "outputs.jsonl")
    assert len(set(test_ids)) == len(test_ids) == 4  # eval.limit
    for model in ("base", "sft", "dpo"):
        assert _ids(run_dir / "eval" / model / "test" / "outputs.jsonl") == test_ids
        assert evaluation[model]["test"]["n"] == 4
        assert evaluation[model]["preference"]["n"] == stages["pairs"]["heldout"] > 0
    for model in ("sft", "dpo"):
        assert _ids(run_dir / "eval" / model / "answers.jsonl") == [f"{model}:{i}" for i in test_ids]
    assert evaluation["win_rate"]["n"] == 4

    # sampled candidates (distinct texts per prompt) judged and paired: what one process writes from them
    candidates = [json.loads(line) for line in (run_dir / SAME_IN_ONE_PROCESS[0]).read_text().splitlines()]
    assert len({c["text"] for c in candidates}) > len({c["prompt_id"] for c in candidates})
    written = {name: (run_dir / name).read_bytes() for name in SAME_IN_ONE_PROCESS}
    result = run_cli([*_args(tiny_gemma_dir, run_dir), "--from", "generate"], home=medtune_home)
    assert result.exit_code == 0, result.output
    assert "Stage sft: inputs unchanged" in result.output
    for name in SAME_IN_ONE_PROCESS:
        assert (run_dir / name).read_bytes() == written[name], name
    again = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]
    assert again["pairs"] == {**stages["pairs"], "finished": again["pairs"]["finished"]}
    for model in ("base", "sft"):
        for metric in ("bleu", "chrf", "ter", "n"):
            assert again["eval"][model]["test"][metric] == evaluation[model]["test"][metric], (model, metric)
