"""The ``medtune`` command end to end on the tiny Gemma model: run, resume, eval and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, run_cli

from medtune.report.formatting import format_delta_with_interval

GLOSSARY = "demo:glossary_en_es.tsv"
EVAL_PAIRS = [
    ("Keep the wound clean and dry.", "Mantenga la herida limpia y seca."),
    ("Your stitches will be removed in ten days.", "Le quitarán los puntos de sutura en diez días."),
    ("Take the tablet with food.", "Tome la tableta con comida."),
    ("Call your doctor if you have a fever.", "Llame a su médico si tiene fiebre."),
    ("Check your blood pressure every morning.", "Mida su presión arterial cada mañana."),
    ("Drink plenty of water.", "Beba mucha agua."),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("medtune-home")


def invoke(home: Path, *args: str):
    return run_cli(list(args), home=home)


def run_args(model: Path, run_dir: Path, *extra: str) -> list[str]:
    sets = [
        f"model={model}",
        f"run_dir={run_dir}",
        "train.max_steps=3",
        "train.batch_size=4",
        "train.max_length=96",
        "eval.few_shot=1",
        "eval.max_new_tokens=8",
        "eval.limit=6",
        "eval.batch_size=32",
    ]
    return ["run", "translate-en-es", *[a for s in sets for a in ("--set", s)], *extra]


@pytest.fixture(scope="module")
def finished_run(tiny_gemma_dir, home, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli-run") / "run"
    result = invoke(home, *run_args(tiny_gemma_dir, run_dir))
    return run_dir, result


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_run_writes_reports_metrics_and_model(finished_run):
    run_dir, result = finished_run
    assert result.exit_code == 0, result.output
    assert "before vs after" in result.output  # the rich table on stdout
    assert "medical chrF++" in result.output
    for column in ("base few-shot", "base zero-shot", "fine-tuned", "delta [95% CI]", "verdict"):
        assert column in result.output

    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<img" in html and "data:image/png;base64," in html
    assert "# medtune report: translate-en-es" in (run_dir / "report.md").read_text(encoding="utf-8")

    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    labels = {m["label"] for m in summary["metrics"]}
    assert {"medical chrF++", "medical BLEU", "medical TER", "general chrF++"} <= labels
    assert summary["forgetting"]["checked"] is True
    assert summary["train"]["steps"] == 3
    assert summary["output_dir"] == str(run_dir / "model")

    card = (run_dir / "model" / "README.md").read_text(encoding="utf-8")
    assert "qualified" in card
    assert (run_dir / "model" / "adapter_config.json").is_file()

    stages = ("eval_base", "eval_base_zero_shot", "eval_tuned")
    for stage in stages:
        metrics = json.loads((run_dir / "eval" / stage / "test" / "metrics.json").read_text(encoding="utf-8"))
        assert {"bleu", "chrf", "ter", "n", "term_accuracy"} <= metrics.keys()
        assert metrics["n"] == 6  # eval.limit
        assert 0 <= metrics["chrf"] <= 100 and metrics["ter"] >= 0
        assert metrics["few_shot"] == (1 if stage == "eval_base" else 0)
    for split in ("test", "general"):  # the same sentences in all three evaluations
        rows = [_jsonl(run_dir / "eval" / stage / split / "outputs.jsonl") for stage in stages]
        assert [r["id"] for r in rows[0]] == [r["id"] for r in rows[1]] == [r["id"] for r in rows[2]]
        assert len(rows[0]) == (6 if split == "test" else len(rows[0])) and rows[0]
    # few-shot examples come from the training split, never from a scored set
    train = {r["src"] for r in _jsonl(run_dir / "data" / "train.jsonl")}
    scored = {
        r["source"]
        for split in ("test", "general")
        for r in _jsonl(run_dir / "eval" / "eval_base" / split / "outputs.jsonl")
    }
    assert not train & scored

    manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert list(manifest["stages"]) == ["data", "eval_base", "eval_base_zero_shot", "train", "eval_tuned", "report"]


def test_run_summary_compares_against_one_headline_base_per_set(finished_run):
    run_dir, result = finished_run
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    stages = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]
    for test_set, split in (("medical", "test"), ("general", "general")):
        metrics = [m for m in summary["metrics"] if m["test_set"] == test_set]
        few, zero = stages["eval_base"][split]["chrf"], stages["eval_base_zero_shot"][split]["chrf"]
        chrf = next(m for m in metrics if m["metric"] == "chrf")
        assert (chrf["base"], chrf["base_zero_shot"]) == (few, zero)
        # the headline base is the better on chrF++ (a tie: zero-shot), and the same for every metric of the set
        assert {m["headline_base"] for m in metrics} == {"few_shot" if few > zero else "zero_shot"}
        for m in metrics:
            headline = m["base"] if m["headline_base"] == "few_shot" else m["base_zero_shot"]
            assert m["delta"] == pytest.approx(m["tuned"] - headline, abs=1e-4)
            assert m["delta_ci_low"] <= m["delta"] + 1e-9 and m["delta"] <= m["delta_ci_high"] + 1e-9
            assert m["significant"] is (m["delta_ci_low"] > 0 or m["delta_ci_high"] < 0)
            assert m["verdict"] in result.output  # the final table states each verdict
            interval = (m["delta_ci_low"], m["delta_ci_high"])
            assert format_delta_with_interval(m["delta"], interval) in result.output
    general = next(m for m in summary["metrics"] if m["test_set"] == "general" and m["metric"] == "chrf")
    forgetting = summary["forgetting"]
    assert forgetting["delta"] == general["delta"] and forgetting["ci_high"] == general["delta_ci_high"]
    assert forgetting["forgetting"] is (general["delta"] <= -2.0 and general["delta_ci_high"] < 0)
    assert forgetting["message"] in " ".join(result.output.split())


def test_run_again_without_resume_is_refused(finished_run, tiny_gemma_dir, home):
    run_dir, _ = finished_run
    result = invoke(home, *run_args(tiny_gemma_dir, run_dir))
    assert_user_error(result, "--resume", str(run_dir))


def test_resume_skips_finished_stages(finished_run, tiny_gemma_dir, home):
    run_dir, _ = finished_run
    before = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]
    result = invoke(home, *run_args(tiny_gemma_dir, run_dir, "--resume"))
    assert result.exit_code == 0, result.output
    after = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["stages"]
    for stage in ("data", "eval_base", "eval_base_zero_shot", "train", "eval_tuned"):
        assert after[stage] == before[stage], stage  # not re-run: same record, same finish time
    assert "Training lora" not in result.output and "eval_base test:" not in result.output
    assert "eval_base_zero_shot test:" not in result.output
    assert "before vs after" in result.output


def _write_jsonl(path: Path, pairs, src: str = "en", tgt: str = "es") -> Path:
    path.write_text(
        "".join(json.dumps({src: s, tgt: t}, ensure_ascii=False) + "\n" for s, t in pairs), encoding="utf-8"
    )
    return path


def test_eval_scores_a_file_with_a_glossary(tiny_gemma_dir, home, tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", EVAL_PAIRS)
    out = tmp_path / "scores"
    result = invoke(
        home,
        "eval",
        "--model",
        str(tiny_gemma_dir),
        "--task",
        "translation",
        "--data",
        str(data),
        "--out",
        str(out),
        "--glossary",
        GLOSSARY,
        "--limit",
        "4",
        "--max-new-tokens",
        "8",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert {"bleu", "chrf", "ter", "n", "term_accuracy"} <= metrics.keys()
    assert metrics["n"] == 4 and metrics["few_shot"] == 0
    assert metrics["term_occurrences"] >= 2  # wound, stitches, ...
    records = [json.loads(line) for line in (out / "outputs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["source"] for r in records] == [s for s, _ in EVAL_PAIRS[:4]]
    assert any(term["src"] == "wound" for term in records[0]["terms"])


def _eval(home, model, data, out, *extra):
    return invoke(home, "eval", "--model", str(model), "--data", str(data), "--out", str(out), *extra)


def test_eval_unknown_model_is_a_user_error(home, tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", EVAL_PAIRS)
    result = _eval(home, "gemma-9-imaginary", data, tmp_path / "out")
    assert_user_error(result, "Unknown model 'gemma-9-imaginary'", "gemma-3-270m")


def test_eval_missing_data_file_is_a_user_error(tiny_gemma_dir, home, tmp_path):
    result = _eval(home, tiny_gemma_dir, tmp_path / "nope.jsonl", tmp_path / "out")
    assert_user_error(result, "Data file not found", "nope.jsonl")


def test_eval_wrong_columns_lists_the_columns_found(tiny_gemma_dir, home, tmp_path):
    data = tmp_path / "pairs.csv"
    data.write_text("English,Spanish\n" + "".join(f'"{s}","{t}"\n' for s, t in EVAL_PAIRS), encoding="utf-8")
    result = _eval(home, tiny_gemma_dir, data, tmp_path / "out")
    assert_user_error(result, "'en'", "'English'", "'Spanish'", "--src-col")
    assert not (tmp_path / "out").exists()

    result = _eval(
        home, tiny_gemma_dir, data, tmp_path / "out", "--src-col", "English", "--tgt-col", "Spanish", "--limit", "3"
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))["n"] == 3


def test_run_unknown_recipe_key_is_a_user_error(home, tmp_path):
    result = invoke(home, "run", "translate-en-es", "--set", "train.lrr=1", "--set", f"run_dir={tmp_path / 'r'}")
    assert_user_error(result, "unknown key 'train.lrr'", "lr")
    assert not (tmp_path / "r").exists()


def test_run_wrong_value_type_is_a_user_error(home, tmp_path):
    result = invoke(home, "run", "translate-en-es", "--set", "train.lr=abc", "--set", f"run_dir={tmp_path / 'r'}")
    assert_user_error(result, "train.lr", "'abc'")


def test_run_recipe_for_another_task_is_a_user_error(tiny_gemma_dir, home, tmp_path):
    recipe = tmp_path / "summ.yaml"
    recipe.write_text(
        f"name: summ-demo\ntask: summarisation\nmodel: {tiny_gemma_dir}\nrun_dir: {tmp_path / 'r'}\n"
        "data:\n  train: demo:medical_en_es.jsonl\n",
        encoding="utf-8",
    )
    result = invoke(home, "run", str(recipe))
    assert_user_error(result, "key 'task'", "'summarisation'", "translation")
    assert not (tmp_path / "r").exists()
