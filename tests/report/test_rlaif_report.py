"""The RLAIF report on a hand-built run folder: every figure traced to its source, deltas to the oracle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from medtune.data.io import write_jsonl
from medtune.eval.significance import paired_mean_delta
from medtune.recipes.loader import validate_recipe
from medtune.report.rlaif import rlaif_table, write_rlaif_report
from medtune.runs import RunFolder

CORRECT = {  # per held-out question, in order: base, SFT, DPO
    "base": [0, 1, 0, 0, 1, 0],
    "sft": [1, 1, 0, 0, 1, 0],
    "dpo": [1, 1, 1, 0, 1, 1],
}
HISTOGRAM = {"edges": [i / 10 for i in range(11)], "counts": [2, 2, 0, 0, 0, 1, 0, 0, 0, 3]}  # build_pairs' stats
HISTORY = [[1, {"reward_margin": 0.0, "reward_accuracy": 0.0}], [2, {"reward_margin": 0.12, "reward_accuracy": 0.75}]]


def _mcq(name: str) -> dict:
    hits = CORRECT[name]
    accuracy = sum(hits) / len(hits)
    return {"accuracy": round(accuracy, 4), "ci_low": 0.1, "ci_high": 0.9, "n": len(hits)}


def _preference(accuracy: float, reward: float | None = None) -> dict:
    figures = {"accuracy": accuracy, "ci_low": 0.0, "ci_high": 1.0, "n": 2, "mean_margin": 0.01}
    return figures if reward is None else {**figures, "reward_accuracy": reward}


def build_run(path: Path) -> RunFolder:
    stages = {
        "data": {"train": 10, "dev": 1, "prompts": 10, "heldout_prompts": 6, "mcq_test": 6, "answers": "letter"},
        "sft": {"sft_model": str(path / "sft_model"), "steps": 2},
        "generate": {"prompts": 4, "candidates": 12, "exact_duplicates": 3, "near_duplicates": 1},
        "judge": {"judge": "reference", "judge_kind": "reference", "judge_fingerprint": "abc123", "judged": 8, "scored": 8, "failed": 0},
        "pairs": {"prompts": 4, "pairs": 3, "ties": 1, "all_bad": 0, "too_few": 0, "train": 2, "heldout": 1, "pair_yield": 0.75, "histogram": HISTOGRAM},
        "dpo": {"dpo_model": str(path / "model"), "steps": 2, "train_loss": 0.69, "metric_history": HISTORY, "loss_history": [[1, 0.69], [2, 0.68]]},
        "eval": {
            "models": {"base": "tiny", "sft": str(path / "sft_model"), "dpo": str(path / "model")},
            "base": {"mcq_loglik": _mcq("base"), "preference": _preference(0.5)},
            "sft": {"mcq_loglik": _mcq("sft"), "preference": _preference(0.5)},
            "dpo": {"mcq_loglik": _mcq("dpo"), "preference": _preference(1.0, reward=1.0)},
            "preference_source": "pairs held out from preference training (pairs.heldout)",
            "win_rate": {
                "judge": "reference", "judge_kind": "reference", "mode": "pointwise scores", "n": 6, "wins": 2,
                "ties": 4, "losses": 0, "win_rate": 0.3333, "ci_low": 0.0, "ci_high": 0.6667, "mean_score_a": 0.5,
                "mean_score_b": 0.8333, "score_delta": {"value": 0.3333, "ci_low": 0.0, "ci_high": 0.6667, "p_value": 0.2},
            },
        },
    }  # fmt: skip
    for i, name in enumerate(stages):
        stages[name]["fingerprint"] = f"f{i}" * 8
        stages[name]["finished"] = "2026-11-29T18:00:00"
    (path / "model").mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"recipe": "qa-rlaif", "stages": stages}), encoding="utf-8")
    pair = {"id": "p1:a:b", "prompt": [{"role": "user", "content": "Which drug?"}], "chosen": "Answer: C. Vitamin K"}
    write_jsonl(
        path / "pairs" / "pairs.jsonl", [{**pair, "rejected": "Answer: A.", "chosen_score": 1.0, "rejected_score": 0.0}]
    )
    for name in ("sft", "dpo"):
        write_jsonl(
            path / "eval" / name / "answers.jsonl",
            [{"id": f"{name}-a", "prompt_id": "q0", "prompt": "Dose?", "text": f"{name} says 5 mg"}],
        )
    write_jsonl(path / "eval" / "win_rate" / "dpo_judgments.jsonl", [{"id": "dpo-a", "score": 0.75}])
    for name, hits in CORRECT.items():
        rows = [{"id": f"q{i}", "correct": bool(h)} for i, h in enumerate(hits)]
        write_jsonl(path / "eval" / name / "mcq_loglik" / "outputs.jsonl", rows)
    return RunFolder(path, "qa-rlaif")


@pytest.fixture
def summary(tmp_path) -> dict:
    recipe = validate_recipe(
        {
            "name": "qa-rlaif",
            "task": "qa",
            "pipeline": "rlaif",
            "data": {"train": "q.jsonl"},
            "eval": {"mcq_modes": ["loglik"]},
        }
    )
    return write_rlaif_report(recipe, build_run(tmp_path / "run"))


def test_accuracy_rows_carry_both_paired_deltas(summary):
    (row,) = summary["metrics"]
    assert (row["base"], row["sft"], row["dpo"]) == (pytest.approx(33.33), pytest.approx(50.0), pytest.approx(83.33))
    for key, a, b in (("sft_vs_base", "base", "sft"), ("dpo_vs_sft", "sft", "dpo"), ("dpo_vs_base", "base", "dpo")):
        oracle = paired_mean_delta(CORRECT[a], CORRECT[b])  # resampled over the same questions, in percent
        assert row[key]["value"] == pytest.approx(100 * oracle.value, abs=1e-4)
        assert (row[key]["ci_low"], row[key]["ci_high"]) == (
            pytest.approx(100 * oracle.ci_low, abs=1e-4),
            pytest.approx(100 * oracle.ci_high, abs=1e-4),
        )
        assert row[key]["verdict"] == ("significant at 95%" if oracle.significant else "not significant")


def test_summary_names_models_stages_and_pair_figures(summary, tmp_path):
    run = tmp_path / "run"
    assert summary["pipeline"] == "rlaif"
    assert (summary["sft_model"], summary["dpo_model"], summary["output_dir"]) == (
        str(run / "sft_model"),
        str(run / "model"),
        str(run / "model"),
    )
    assert list(summary["stages"]) == ["data", "sft", "generate", "judge", "pairs", "dpo", "eval"]
    assert summary["stages"]["judge"]["fingerprint"] == "f3" * 8
    assert (summary["pairs"]["pairs"], summary["pairs"]["pair_yield"]) == (3, 0.75)
    assert summary["pairs"]["histogram"] == HISTOGRAM
    assert "fingerprint" not in summary["pairs"] and "finished" not in summary["pairs"]  # the runner's, not the stage's
    assert summary["dpo_training"]["final_reward_margin"] == 0.12
    assert summary["preference_accuracy"]["dpo"]["reward_accuracy"] == 1.0
    assert summary["win_rate"]["wins"] == 2
    assert "reference judge" in summary["notes"][0] and summary["judge"]["judge_fingerprint"] == "abc123"
    assert json.loads((run / "summary.json").read_text()) == summary


def test_report_shows_every_figure(summary, tmp_path):
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert html.count("<img") == 4  # score histogram, reward curves, loss curve, the accuracy chart
    for text in ("Win-rate: DPO vs SFT", "pair yield", "75.0%", "Preference accuracy", "reward margin", "abc123"):
        assert text in html
    assert "Answer: C. Vitamin K (1.00)" in html and "Answer: A. (0.00)" in html  # a sample pair with its scores
    assert "dpo says 5 mg (0.75)" in html and "sft says 5 mg" in html  # held-out answers, scored where judged
    md = (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    assert "| MCQ accuracy, log-likelihood of the option letter (%) |" in md


def test_terminal_table(summary):
    console = Console(record=True, width=200)
    console.print(rlaif_table(summary))
    text = console.export_text()
    assert "win-rate DPO vs SFT (%)" in text and "33.33%" in text
    assert "preference accuracy (%)" in text and "3 preference pairs from 4 prompts" in text


def test_model_card_compares_base_and_final_model(summary, tmp_path):
    card = (tmp_path / "run" / "model" / "README.md").read_text(encoding="utf-8")
    assert "tags:" in card and "medtune" in card
    assert "won on 2 of 6 held-out prompts" in card
    (row,) = summary["metrics"]
    assert f"{row['dpo_vs_base']['value']:+.2f}" in card  # DPO minus base, as in summary.json
