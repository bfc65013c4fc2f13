"""Evaluation under ``accelerate launch`` with 2 processes (gloo on CPU): each process scores its share of the items and
the shares are gathered in order, so the files and metrics equal a single process's (functions and ``medtune eval``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from launching import launch_command, run_ok

WORKER = Path(__file__).with_name("shard_worker.py")
EVALUATIONS = (
    "translation",
    "translation_one",
    "mcq_loglik",
    "mcq_generate",
    "perplexity_text",
    "perplexity_chat",
    "preference",
)
# how long each process took: the only figures that differ from run to run
TIMINGS = {"seconds", "tokens_per_s", "items_per_s", "sentences_per_s", "generation_seconds", "pairs_per_s"}


def _without_timings(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key not in TIMINGS}


def test_two_processes_evaluate_every_item_once_with_the_metrics_of_one(tmp_path, tiny_chatml_dir, medtune_home):
    single, double = tmp_path / "single", tmp_path / "double"
    run_ok([sys.executable, str(WORKER), str(tiny_chatml_dir), str(single)])
    run_ok([*launch_command(), str(WORKER), str(tiny_chatml_dir), str(double)])

    single_record = json.loads((single / "rank0.json").read_text())
    records = [json.loads((double / f"rank{r}.json").read_text()) for r in (0, 1)]
    one, ranks = single_record["metrics"], [r["metrics"] for r in records]
    assert list(one) == list(EVALUATIONS)
    for name in EVALUATIONS:
        # the work was shared: each process ran its share of the forward passes, together all of them once
        shares = [r["forward_rows"][name] for r in records]
        assert sum(shares) == single_record["forward_rows"][name] > 0, name
        assert shares[0] > 0 and (shares[1] > 0) == (name != "translation_one"), (name, shares)
        expected = _without_timings(one[name])
        for rank in ranks:  # every process returns the whole evaluation's metrics
            assert _without_timings(rank[name]) == expected, name
        # the files: written once, every item once and in order, equal to one process's
        outputs = (double / name / "outputs.jsonl").read_text(encoding="utf-8")
        assert outputs == (single / name / "outputs.jsonl").read_text(encoding="utf-8"), name
        ids = [json.loads(line)["id"] for line in outputs.splitlines()]
        assert len(ids) == len(set(ids)) == expected["n"], name
        written = json.loads((double / name / "metrics.json").read_text(encoding="utf-8"))
        assert _without_timings(written) == expected, name
    assert one["translation"]["n"] == 5 and one["translation_one"]["n"] == 1
    assert one["perplexity_text"]["sequences"] > one["perplexity_text"]["n"]  # documents span several windows


def test_eval_command_under_two_processes_writes_the_one_process_evaluation(tmp_path, tiny_chatml_dir, medtune_home):
    from cli_checks import run_cli

    def args(out: Path) -> list[str]:
        return [
            "eval", "--task", "translation", "--model", str(tiny_chatml_dir), "--data", "demo:medical_en_es.jsonl",
            "--limit", "5", "--few-shot", "1", "--batch-size", "1", "--max-new-tokens", "6", "--out", str(out),
            "--dtype", "float32", "--device", "cpu",
        ]  # fmt: skip

    single, double = tmp_path / "single", tmp_path / "double"
    assert run_cli(args(single), home=medtune_home).exit_code == 0
    done = run_ok([*launch_command(module=True), "medtune.cli", *args(double)])
    output = " ".join((done.stdout + done.stderr).split())
    assert output.count("(translation)") == output.count("Wrote ") == 1  # one process reports: one table, one line
    for name in ("outputs.jsonl", "evaluation.json"):
        assert (double / name).read_text(encoding="utf-8") == (single / name).read_text(encoding="utf-8"), name
    written, expected = (json.loads((folder / "metrics.json").read_text()) for folder in (double, single))
    assert _without_timings(written) == _without_timings(expected) and written["n"] == 5
