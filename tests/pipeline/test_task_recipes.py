"""The chat-sft, qa-sft and dapt recipes end to end through the CLI, on a tiny Gemma.

Each run scores the base model, trains a few steps, scores again and writes the report; the
tests check the run folder's contents and the numbers that link its parts. The real shared
datasets are used through --set when they are present (they are optional).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtune.cli import app

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def run_recipe(home: Path, recipe: str, model: Path, run_dir: Path, *sets: str, command: str = "run"):
    base = [
        f"model={model}",
        f"run_dir={run_dir}",
        "train.max_steps=4",
        "train.batch_size=4",
        "train.max_length=128",
        "train.eval_every=2",
        "eval.limit=12",
        "eval.max_new_tokens=12",
        "eval.report_samples=3",
    ]
    args = [command, recipe, *[a for s in (*base, *sets) for a in ("--set", s)]]
    result = CliRunner().invoke(app, args, env={"MEDTUNE_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return result


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]


def summary_metrics(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["metrics"]


def ids(path: Path) -> list:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines()]


def check_delta_columns(metric: dict) -> None:
    """The interface of summary.json: delta = tuned minus the headline base; the verdict follows the interval."""
    headline = metric["base"] if metric["headline_base"] == "few_shot" else metric["base_zero_shot"]
    assert metric["delta"] == pytest.approx(metric["tuned"] - headline, abs=1e-4)
    assert metric["delta_ci_low"] <= metric["delta"] + 1e-9 and metric["delta"] <= metric["delta_ci_high"] + 1e-9
    assert metric["significant"] is (metric["delta_ci_low"] > 0 or metric["delta_ci_high"] < 0)
    assert metric["verdict"] == ("significant at 95%" if metric["significant"] else "not significant")
    assert 0 < metric["p_value"] <= 1


def test_chat_sft_recipe(tiny_chat_gemma_dir, tmp_path):
    run_dir = tmp_path / "chat"
    run_recipe(tmp_path / "home", "chat-sft", tiny_chat_gemma_dir, run_dir)
    stages = manifest(run_dir)
    assert list(stages) == ["data", "eval_base", "train", "eval_tuned", "report"]
    trained = [json.loads(x) for x in (run_dir / "data" / "train.jsonl").read_text().splitlines()]
    assert all(c["messages"][0]["role"] == "system" for c in trained)  # data.system_prompt fills the gaps
    counts = stages["data"]
    assert counts["train"] + counts["dev"] + counts["test"] == 164  # every bundled dialogue is used once
    base, tuned = (stages[s]["perplexity"] for s in ("eval_base", "eval_tuned"))
    assert base["n_tokens"] == tuned["n_tokens"] > 0  # the same assistant tokens are scored before and after
    assert base["perplexity"] != tuned["perplexity"]
    row = next(m for m in summary_metrics(run_dir) if m["metric"] == "perplexity")
    # perplexity has no few-shot base: the base is scored once, zero-shot, and is the headline
    assert row["base"] is None and row["headline_base"] == "zero_shot"
    assert row["base_zero_shot"] == pytest.approx(base["perplexity"]) and row["tuned"] == pytest.approx(
        tuned["perplexity"]
    )
    check_delta_columns(row)
    out = run_dir / "eval"
    assert ids(out / "eval_base" / "perplexity" / "outputs.jsonl") == ids(
        out / "eval_tuned" / "perplexity" / "outputs.jsonl"
    )
    assert len((run_dir / "eval" / "eval_tuned" / "samples.jsonl").read_text().splitlines()) == 3
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "perplexity" in html and "<img" in html
    model_dir = Path(stages["train"]["output_dir"])
    info = json.loads((model_dir / "medtune_model.json").read_text())
    assert info["system_prompt"].startswith("You are a primary-care doctor")  # medtune chat's default
    assert (
        "chat_template" in json.loads((model_dir / "tokenizer_config.json").read_text())
        or (model_dir / "chat_template.jinja").is_file()
    )


def test_qa_sft_recipe(tiny_chat_gemma_dir, tmp_path):
    run_dir = tmp_path / "qa"
    run_recipe(tmp_path / "home", "qa-sft", tiny_chat_gemma_dir, run_dir, "eval.few_shot=1", "train.max_length=512")
    stages = manifest(run_dir)
    assert list(stages) == ["data", "eval_base", "eval_base_zero_shot", "train", "eval_tuned", "report"]
    for stage in ("eval_base", "eval_base_zero_shot", "eval_tuned"):
        for mode in ("loglik", "generate"):
            m = stages[stage][f"mcq_{mode}"]
            assert m["n"] == 12 and m["ci_low"] <= m["accuracy"] <= m["ci_high"]
            # the same questions, in every evaluation
            assert ids(run_dir / "eval" / stage / f"mcq_{mode}" / "outputs.jsonl") == ids(
                run_dir / "eval" / "eval_base" / f"mcq_{mode}" / "outputs.jsonl"
            )
    assert stages["eval_base"]["mcq_loglik"]["few_shot"] == 1
    assert stages["eval_base_zero_shot"]["mcq_loglik"]["few_shot"] == 0
    assert stages["eval_tuned"]["mcq_loglik"]["few_shot"] == 0
    metrics = summary_metrics(run_dir)
    assert [m["metric"] for m in metrics] == ["accuracy_loglik", "accuracy_generate"]
    few, zero = (100 * stages[s]["mcq_loglik"]["accuracy"] for s in ("eval_base", "eval_base_zero_shot"))
    assert metrics[0]["base"] == pytest.approx(few) and metrics[0]["base_zero_shot"] == pytest.approx(zero)
    # one headline base for the set, the better on the main metric (log-likelihood accuracy; a tie: zero-shot)
    assert {m["headline_base"] for m in metrics} == {"few_shot" if few > zero else "zero_shot"}
    for m in metrics:
        check_delta_columns(m)
    # no test question is trained on
    test_ids = {json.loads(x)["id"] for x in (run_dir / "data" / "mcq_test.jsonl").read_text().splitlines()}
    train_ids = {json.loads(x)["id"] for x in (run_dir / "data" / "train.jsonl").read_text().splitlines()}
    assert test_ids and not test_ids & train_ids
    assert "subject" in (run_dir / "report.html").read_text(encoding="utf-8").lower()


def test_dapt_recipe(tiny_chat_gemma_dir, tmp_path):
    run_dir = tmp_path / "dapt"
    run_recipe(tmp_path / "home", "dapt", tiny_chat_gemma_dir, run_dir)
    stages = manifest(run_dir)
    for stage in ("eval_base", "eval_tuned"):
        assert {"test", "general"} <= set(stages[stage])
    train = stages["train"]
    assert train["padding_waste"] < 0.10  # packed blocks: (almost) no padding
    assert list(stages) == ["data", "eval_base", "train", "eval_tuned", "report"]  # no few-shot base
    metrics = summary_metrics(run_dir)
    assert {m["metric"] for m in metrics} == {"perplexity", "general_perplexity"}
    for m in metrics:
        assert m["base"] is None and m["headline_base"] == "zero_shot"
        check_delta_columns(m)
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<h2>Forgetting check</h2>" in html


def test_train_only_on_a_user_file(tiny_chat_gemma_dir, tmp_path):
    data = tmp_path / "qa.csv"
    data.write_text(
        "question,answer\n"
        + "".join(f"What dose of drug {i} is usual?,Usually {i} mg twice a day with food.\n" for i in range(12)),
        encoding="utf-8",
    )
    out = tmp_path / "model"
    run_recipe(
        tmp_path / "home",
        "chat-sft",
        tiny_chat_gemma_dir,
        tmp_path / "run",
        f"data.train={data}",
        f"output_dir={out}",
        "data.test_size=0.2",
        command="train",
    )
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["steps"] == 4 and metrics["train_examples"] + metrics["dev_examples"] == 10


@pytest.mark.skipif(not (SHARED / "qa").is_dir(), reason="shared datasets not present")
@pytest.mark.parametrize("name", ["medmcqa_dev.jsonl", "pubmedqa_traincv500.jsonl"])
def test_qa_sft_on_shared_benchmarks(tiny_chat_gemma_dir, tmp_path, name):
    run_dir = tmp_path / "qa"
    spec = SHARED / "qa" / name
    run_recipe(
        tmp_path / "home",
        "qa-sft",
        tiny_chat_gemma_dir,
        run_dir,
        f"data.train={spec}",
        "data.sample=40",
        "train.max_length=1024",
    )
    result = manifest(run_dir)["eval_tuned"]["mcq_loglik"]
    assert result["n"] == 10  # 25% of the 40 sampled questions


@pytest.mark.skipif(not (SHARED / "chat").is_dir(), reason="shared datasets not present")
def test_chat_sft_on_shared_dialogues(tiny_chat_gemma_dir, tmp_path):
    run_dir = tmp_path / "chat"
    spec = SHARED / "chat" / "genmedgpt5k_synthetic.jsonl"
    run_recipe(tmp_path / "home", "chat-sft", tiny_chat_gemma_dir, run_dir, f"data.train={spec}", "data.sample=40")
    assert manifest(run_dir)["data"]["train"] + manifest(run_dir)["data"]["dev"] == 34
