"""``medtune eval --task mcq|perplexity`` end to end on the tiny Gemma model, and its user errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_checks import assert_option_refused, assert_user_error, file_checksums, run_cli

from medtune.data.demo import DEMO_DIR
from medtune.data.sampling import sample_items


def invoke(*args: str):
    return run_cli(["eval", *args])


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_eval_mcq_loglik_with_few_shot_writes_metrics(tiny_gemma_dir, tmp_path):
    out = tmp_path / "mcq"
    result = invoke(
        "--task", "mcq", "--model", str(tiny_gemma_dir), "--data", "demo:medical_mcq.jsonl", "--out", str(out),
        "--limit", "6", "--few-shot", "1", "--batch-size", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "ci_low" in result.output  # the rich table
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == 6 and metrics["mode"] == "loglik" and metrics["few_shot"] == 1
    assert metrics["ci_low"] <= metrics["accuracy"] <= metrics["ci_high"]
    assert metrics["prompt_format"] == "plain text"  # the tiny tokenizer has no template
    rows = read_rows(out / "outputs.jsonl")
    assert len(rows) == 6 and metrics["correct"] == sum(r["correct"] for r in rows)
    demo_ids = [json.loads(line)["id"] for line in (DEMO_DIR / "medical_mcq.jsonl").read_text().splitlines()]
    [shot] = sample_items(demo_ids, 1, seed=42)  # the CLI's default seed picks the few-shot question
    assert [r["id"] for r in rows] == [i for i in demo_ids if i != shot][:6]  # file order, shot not scored
    assert set(metrics["per_subject"]) == {r["subject"] for r in rows}


def test_eval_mcq_generate_mode(tiny_chatml_dir, tmp_path):
    out = tmp_path / "gen"
    result = invoke(
        "--task", "mcq", "--mode", "generate", "--model", str(tiny_chatml_dir), "--data", "demo:medical_mcq.jsonl",
        "--out", str(out), "--limit", "3", "--max-new-tokens", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["mode"] == "generate" and metrics["n"] == 3 and metrics["prompt_format"] == "chat template"
    assert metrics["unparsed"] == sum(r["predicted"] is None for r in read_rows(out / "outputs.jsonl"))


def test_eval_perplexity_on_text_and_on_conversations(tiny_chatml_dir, tmp_path):
    text_out, chat_out = tmp_path / "text", tmp_path / "chat"
    result = invoke(
        "--task", "perplexity", "--model", str(tiny_chatml_dir), "--data", "demo:medical_paragraphs.jsonl",
        "--out", str(text_out), "--limit", "3", "--max-length", "64",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output
    metrics = json.loads((text_out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["kind"] == "text" and metrics["n"] == 3 and metrics["max_length"] == 64
    assert metrics["n_tokens"] == sum(r["tokens"] for r in read_rows(text_out / "outputs.jsonl"))
    assert metrics["perplexity"] > 1

    result = invoke(
        "--task", "perplexity", "--model", str(tiny_chatml_dir), "--data", "demo:doctor_patient_dialogues.jsonl",
        "--out", str(chat_out), "--limit", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((chat_out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["kind"] == "conversations" and metrics["n"] == 2 and metrics["max_length"] == 512


def test_eval_user_errors_exit_2_with_a_message(tiny_gemma_dir, tmp_path):
    model = str(tiny_gemma_dir)
    out = str(tmp_path / "x")
    assert_user_error(
        invoke("--task", "summarise", "--model", model, "--data", "demo:medical_mcq.jsonl", "--out", out),
        "--task 'summarise' is not supported",
        "translation, mcq, perplexity",
    )
    assert_user_error(
        invoke("--task", "mcq", "--model", model, "--data", str(tmp_path / "missing.jsonl"), "--out", out),
        "Data file not found",
        "missing.jsonl",
    )
    assert_user_error(
        invoke("--task", "mcq", "--mode", "vote", "--model", model, "--data", "demo:medical_mcq.jsonl", "--out", out),
        "--mode 'vote'",
        "loglik, generate",
    )
    assert_user_error(
        invoke("--task", "perplexity", "--format", "xml", "--model", model, "--data", "demo:x.jsonl", "--out", out),
        "--format 'xml'",
    )
    # conversations need a chat template; the tiny tokenizer has none and no known family
    assert_user_error(
        invoke("--task", "perplexity", "--model", model, "--data", "demo:doctor_patient_dialogues.jsonl", "--out", out),
        "no chat template",
    )


TASK_DATA = {
    "translation": "demo:medical_en_es.jsonl",
    "mcq": "demo:medical_mcq.jsonl",
    "perplexity": "demo:medical_paragraphs.jsonl",
}


@pytest.mark.parametrize("task", sorted(TASK_DATA))
def test_every_task_refuses_a_trained_model_folder_as_out(tiny_gemma_dir, tmp_path, task):
    model_folder = tmp_path / "model"
    shutil.copytree(tiny_gemma_dir, model_folder)
    (model_folder / "metrics.json").write_text('{"train_loss": 1.23, "steps": 40}', encoding="utf-8")
    before = file_checksums(model_folder)
    for extra in ([], ["--overwrite"]):
        result = invoke(
            "--task",
            task,
            "--model",
            str(tiny_gemma_dir),
            "--data",
            TASK_DATA[task],
            "--out",
            str(model_folder),
            *extra,
        )
        assert_user_error(
            result,
            f"--out {model_folder} is not empty",
            "holds no earlier medtune evaluation",
            "Give a new or empty folder",
        )
    assert file_checksums(model_folder) == before


def test_the_same_evaluation_is_replaced_only_with_overwrite(tiny_gemma_dir, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"en": "Drink water.", "es": "Beba agua."}\n{"en": "Rest today.", "es": "Descanse hoy."}\n', encoding="utf-8"
    )
    out = tmp_path / "scores"
    args = ["--model", str(tiny_gemma_dir), "--data", str(pairs), "--out", str(out), "--max-new-tokens", "3"]
    assert invoke(*args).exit_code == 0
    assert json.loads((out / "evaluation.json").read_text(encoding="utf-8")) == {
        "task": "translation",
        "data": str(pairs.resolve()),
        "model": str(tiny_gemma_dir.resolve()),
        "outputs": None,
    }
    before = file_checksums(out)
    assert_user_error(invoke(*args), "already holds this evaluation", "Pass --overwrite")
    other = tmp_path / "other.jsonl"
    other.write_text('{"en": "Walk daily.", "es": "Camine a diario."}\n', encoding="utf-8")
    other_args = ["--model", str(tiny_gemma_dir), "--data", str(other), "--out", str(out), "--overwrite"]
    assert_user_error(invoke(*other_args), "holds another evaluation", "other.jsonl")
    assert file_checksums(out) == before
    replaced = invoke(*args, "--overwrite", "--limit", "1")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["n"] == 1


@pytest.mark.parametrize(
    ("option", "value", "bound"),
    [
        ("--limit", "0", "greater than or equal to 1"),
        ("--limit", "-2", "greater than or equal to 1"),
        ("--batch-size", "0", "greater than or equal to 1"),
        ("--max-new-tokens", "0", "greater than or equal to 1"),
        ("--few-shot", "-1", "greater than or equal to 0"),
        ("--num-beams", "0", "greater than or equal to 1"),
        ("--max-length", "1", "greater than or equal to 2"),
        ("--seed", "-1", "greater than or equal to 0"),
    ],
)
def test_numeric_options_out_of_range_exit_2(tiny_gemma_dir, tmp_path, option, value, bound):
    out = tmp_path / "out"
    args = ["--model", str(tiny_gemma_dir), "--data", "demo:medical_mcq.jsonl", "--out", str(out)]
    assert_option_refused(invoke("--task", "mcq", *args, option, value), option, bound)
    assert not out.exists()


@pytest.mark.parametrize(
    ("task", "source", "unit"),
    [("translation", "demo:medical_en_es.jsonl", "pairs"), ("mcq", "demo:medical_mcq.jsonl", "questions")],
)
def test_more_few_shot_examples_than_rows_is_a_user_error(tiny_gemma_dir, tmp_path, task, source, unit):
    three = tmp_path / "three.jsonl"
    three.write_text(
        "".join((DEMO_DIR / source.removeprefix("demo:")).read_text(encoding="utf-8").splitlines(True)[:3])
    )
    args = ["--task", task, "--model", str(tiny_gemma_dir), "--out", str(tmp_path / "out"), "--few-shot", "5"]
    assert_user_error(
        invoke(*args, "--data", str(three)),
        f"--few-shot 5 takes its examples from {three}, which has 3 usable {unit}",
        "Use --few-shot 2 or less",
    )
    assert_user_error(
        invoke(*args, "--data", source, "--few-shot-data", str(three)),
        f"--few-shot-data has only 3 usable {unit}",
    )
