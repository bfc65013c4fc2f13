"""Bad input to ``medtune run/train/eval`` on the tiny Gemma model: each a one-paragraph error, or the README's own command working."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import pytest
from cli_checks import assert_user_error, run_cli

from medtune.data.demo import DEMO_DIR

README = Path(__file__).resolve().parents[1] / "README.md"


def invoke(*args: str):
    return run_cli(list(args))


def train_args(recipe: str, model: Path, run_dir: Path, *sets: str) -> list[str]:
    sets = (f"model={model}", f"run_dir={run_dir}", "train.max_steps=1", "train.max_length=64", *sets)
    return ["train", recipe, *[a for s in sets for a in ("--set", s)]]


def test_a_file_of_duplicates_says_how_many_were_dropped(tiny_gemma_dir, tmp_path, medtune_home):
    pair = {"en": "Take one tablet daily.", "es": "Tome una tableta al día."}
    data = tmp_path / "dups.jsonl"
    data.write_text((json.dumps(pair) + "\n") * 50, encoding="utf-8")
    result = invoke(*train_args("translate-en-es", tiny_gemma_dir, tmp_path / "run", f"data.train={data}"))
    assert_user_error(
        result,
        "Too few pairs to split: 1 pair in 1 document, left after validation",
        "train: 50 pairs, 49 dropped (49 exact duplicate of an earlier pair)",
        "leave the test split empty",
        "give a test file with data.test",
    )


@pytest.mark.parametrize(
    ("recipe", "row", "unit"),
    [
        (
            "chat-sft",
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
            "conversations",
        ),
        ("dapt", {"text": "Hypertension is high blood pressure."}, "documents"),
    ],
)
def test_duplicates_only_in_other_tasks_say_how_many_were_dropped(
    tiny_gemma_dir, tmp_path, medtune_home, recipe, row, unit
):
    data = tmp_path / "dups.jsonl"
    data.write_text((json.dumps(row) + "\n") * 50, encoding="utf-8")
    result = invoke(*train_args(recipe, tiny_gemma_dir, tmp_path / "run", f"data.train={data}"))
    assert_user_error(
        result,
        f"of 1 items, left after validation (train: 50 {unit}, 49 dropped (49 exact duplicate of an earlier row))",
        "leaves the held-out set empty",
    )


@pytest.mark.parametrize("recipe", ["translate-en-es", "chat-sft", "qa-sft"])
def test_a_folder_as_data_train_says_it_is_a_folder(tiny_gemma_dir, tmp_path, medtune_home, recipe):
    folder = tmp_path / "my_data"
    folder.mkdir()
    (folder / "pairs.jsonl").write_text('{"en": "a", "es": "b"}\n', encoding="utf-8")
    result = invoke(*train_args(recipe, tiny_gemma_dir, tmp_path / "run", f"data.train={folder}"))
    assert_user_error(result, f"{folder} is a folder; expected one .jsonl, .csv or .tsv data file")
    assert "not found" not in result.output


def test_missing_columns_in_a_recipe_suggest_recipe_keys_not_eval_options(tiny_gemma_dir, tmp_path, medtune_home):
    data = tmp_path / "my_pairs.csv"
    data.write_text("English,Spanish\nFever.,Fiebre.\n", encoding="utf-8")
    result = invoke(*train_args("translate-en-es", tiny_gemma_dir, tmp_path / "run", f"data.train={data}"))
    assert_user_error(result, "'en', 'es' not found", "Columns found: 'English', 'Spanish'", "--set data.src_col=...")
    assert "--src-col" not in result.output


def test_an_adapter_whose_base_is_gone_is_named_by_eval(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    base = tmp_path / "base-model"  # was here when the adapter was trained
    (adapter / "medtune_model.json").write_text(json.dumps({"base_model": str(base)}), encoding="utf-8")
    result = invoke("eval", "--model", str(adapter), "--data", "demo:medical_en_es.jsonl", "--out", str(tmp_path / "o"))
    assert_user_error(result, f"is a LoRA adapter on the base model '{base}'", "that base is not found")
    assert "Unknown model" not in result.output


def readme_csv_command() -> list[str]:
    """The README's 'spreadsheet export with columns English and Spanish' command, as arguments."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    [block] = [b for b in blocks if "data.src_col=English" in b]
    args = shlex.split(block.replace("\\\n", " "))
    assert args[:2] == ["medtune", "run"]
    return args[1:]


def test_the_readme_csv_command_works_with_the_bundled_general_set(tiny_gemma_dir, tmp_path, medtune_home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = [json.loads(line) for line in (DEMO_DIR / "medical_en_es.jsonl").read_text(encoding="utf-8").splitlines()]
    with open("my_pairs.csv", "w", encoding="utf-8", newline="") as fh:  # the file the README command names
        writer = csv.writer(fh)
        writer.writerow(["English", "Spanish"])
        writer.writerows([r["en"], r["es"]] for r in records[:60])
    speed = [f"model={tiny_gemma_dir}", "train.max_steps=1", "train.max_length=64", "eval.few_shot=1"]
    speed += ["eval.max_new_tokens=4", "eval.limit=4", "eval.batch_size=64"]
    result = invoke(*readme_csv_command(), *[a for s in speed for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "my-clinic"
    counts = json.loads((run / "run.json").read_text(encoding="utf-8"))["stages"]["data"]
    general = (DEMO_DIR / "general_en_es.jsonl").read_text(encoding="utf-8").splitlines()
    assert counts["general"] == len([line for line in general if line.strip()])  # the bundled set, by its en/es
    assert counts["train"] + counts["dev"] + counts["test"] == 60
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    general_chrf = next(m for m in summary["metrics"] if m["label"] == "general chrF++")
    assert general_chrf["base"] is not None and general_chrf["tuned"] is not None
    assert summary["forgetting"]["checked"] is True
