"""``medtune run`` / ``medtune train`` on the tiny Gemma: nothing a user made is lost, and a run
never mixes two recipes. Each case writes the user's files first and compares checksums after."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, file_checksums, run_cli
from demo_rows import demo_records

from medtune.recipes.loader import load_recipe
from medtune.runs import CHECKPOINTS, recipe_hash

PAIRS = [
    ("Keep the wound clean and dry.", "Mantenga la herida limpia y seca."),
    ("Take the tablet with food.", "Tome la tableta con comida."),
    ("Call your doctor if you have a fever.", "Llame a su médico si tiene fiebre."),
    ("Drink plenty of water.", "Beba mucha agua."),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("medtune-home")


def invoke(home: Path, *args: str):
    return run_cli(list(args), home=home)


def sets(model: Path, run_dir: Path, *extra: str) -> list[str]:
    """Recipe overrides for a seconds-long run on the tiny model, then ``extra``."""
    keys = [
        f"model={model}",
        f"run_dir={run_dir}",
        "data.general=null",
        "train.max_steps=2",
        "train.batch_size=4",
        "train.max_length=64",
        "train.save_every=1",
        "eval.few_shot=1",
        "eval.limit=3",
        "eval.max_new_tokens=4",
        *extra,
    ]
    return [a for key in keys for a in ("--set", key)]


def train(home: Path, model: Path, run_dir: Path, *extra: str, options: tuple[str, ...] = ()):
    return invoke(home, "train", "translate-en-es", *sets(model, run_dir, *extra), *options)


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


def user_files(folder: Path) -> dict[str, str]:
    """The user's own README.md, metrics.json and recipe.yaml (names medtune writes too); their checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {"README.md": "# my notes", "metrics.json": '{"mine": 1}', "recipe.yaml": "x: 1"}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return file_checksums(folder)


def write_pairs(path: Path, src: str = "en", tgt: str = "es") -> Path:
    path.write_text("".join(json.dumps({src: s, tgt: t}) + "\n" for s, t in PAIRS * 10), encoding="utf-8")
    return path


def test_finished_training_leaves_no_checkpoint_and_records_the_recipe(tiny_gemma_dir, home, tmp_path):
    run_dir = tmp_path / "run"
    result = train(home, tiny_gemma_dir, run_dir)
    assert result.exit_code == 0, result.output
    assert (run_dir / "model" / "adapter_model.safetensors").is_file()
    assert not (run_dir / "model" / CHECKPOINTS).exists()  # save_every=1 wrote one during training
    resolved = load_recipe("translate-en-es", [s for s in sets(tiny_gemma_dir, run_dir) if s != "--set"])
    assert manifest(run_dir)["recipe_hash"] == recipe_hash(resolved.model_dump(mode="json"))
    assert manifest(run_dir)["resolved_recipe"]["train"]["max_steps"] == 2


@pytest.mark.parametrize("option", ["--overwrite", "--resume"])
def test_a_run_dir_medtune_did_not_make_is_never_written(tiny_gemma_dir, home, tmp_path, option):
    before = user_files(tmp_path / "mine")
    result = train(home, tiny_gemma_dir, tmp_path / "mine", options=(option,))
    assert_user_error(result, f"The run folder {tmp_path / 'mine'} holds files but no run.json", "--set run_dir=")
    assert file_checksums(tmp_path / "mine") == before


@pytest.mark.parametrize("option", ["--overwrite", "--resume"])
def test_an_output_dir_of_unrelated_files_is_never_written(tiny_gemma_dir, home, tmp_path, option):
    before = user_files(tmp_path / "mine")
    result = train(home, tiny_gemma_dir, tmp_path / "run", f"output_dir={tmp_path / 'mine'}", options=(option,))
    assert_user_error(
        result, f"output_dir {tmp_path / 'mine'} holds files that medtune did not write", "--set output_dir="
    )
    assert file_checksums(tmp_path / "mine") == before


def test_overwrite_with_a_data_typo_keeps_the_previous_model(tiny_gemma_dir, home, tmp_path):
    run_dir = tmp_path / "run"
    assert train(home, tiny_gemma_dir, run_dir).exit_code == 0
    before = file_checksums(run_dir)
    result = train(home, tiny_gemma_dir, run_dir, f"data.train={tmp_path / 'typo.jsonl'}", options=("--overwrite",))
    assert_user_error(result, "typo.jsonl")
    assert f"The earlier run in {run_dir} is kept as it was." in " ".join(result.output.split())
    assert file_checksums(run_dir) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no copy set aside and forgotten

    result = train(home, tiny_gemma_dir, run_dir, "train.max_steps=3", options=("--overwrite",))
    assert result.exit_code == 0, result.output
    assert manifest(run_dir)["stages"]["train"]["steps"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_resume_refuses_a_changed_recipe_and_force_retrains_afresh(tiny_gemma_dir, home, tmp_path):
    run_dir = tmp_path / "run"
    assert train(home, tiny_gemma_dir, run_dir).exit_code == 0
    before, data_record = file_checksums(run_dir), manifest(run_dir)["stages"]["data"]

    result = train(home, tiny_gemma_dir, run_dir, "train.max_steps=3", options=("--resume",))
    assert_user_error(
        result, "train.max_steps: 2 -> 3", "--resume --force", "(train; training starts from step 0)", "--overwrite"
    )
    other = write_pairs(tmp_path / "other.jsonl")
    result = train(home, tiny_gemma_dir, run_dir, f"data.train={other}", options=("--resume",))
    assert_user_error(result, f"data.train: demo:medical_en_es.jsonl -> {other}", "--resume --force")
    assert file_checksums(run_dir) == before  # recipe.yaml and run.json still describe the model there

    result = train(home, tiny_gemma_dir, run_dir, "train.max_steps=3", options=("--resume", "--force"))
    assert result.exit_code == 0, result.output
    assert "--force: the recipe changed (train.max_steps: 2 -> 3); re-running train." in " ".join(result.output.split())
    assert "Resuming from step" not in result.output and "No checkpoint in" not in result.output  # resume=False
    now = manifest(run_dir)
    assert now["stages"]["data"] == data_record  # not re-run
    assert now["stages"]["train"]["steps"] == 3
    assert json.loads((run_dir / "model" / "metrics.json").read_text(encoding="utf-8"))["steps"] == 3
    assert "max_steps: 3" in (run_dir / "recipe.yaml").read_text(encoding="utf-8")
    [forced] = now["forced_changes"]
    assert forced["changed"] == ["train.max_steps: 2 -> 3"] and forced["invalidated"] == ["train"]
    assert forced["new_hash"] == now["recipe_hash"] != forced["old_hash"]
    assert not (run_dir / "model" / CHECKPOINTS).exists()


def test_resume_force_of_a_key_no_stage_reads_does_not_retrain(tiny_gemma_dir, home, tmp_path):
    run_dir = tmp_path / "run"
    assert train(home, tiny_gemma_dir, run_dir).exit_code == 0
    model = file_checksums(run_dir / "model")
    result = train(home, tiny_gemma_dir, run_dir, "description=my words", options=("--resume", "--force"))
    assert result.exit_code == 0, result.output
    assert "Training lora" not in result.output
    assert file_checksums(run_dir / "model") == model


def test_a_failed_data_stage_does_not_block_the_next_attempt(tiny_gemma_dir, home, tmp_path):
    run_dir = tmp_path / "run"
    assert_user_error(train(home, tiny_gemma_dir, run_dir, f"data.train={tmp_path / 'typo.jsonl'}"), "typo.jsonl")
    result = train(home, tiny_gemma_dir, run_dir)
    assert result.exit_code == 0, result.output
    assert manifest(run_dir)["stages"]["train"]["steps"] == 2


def test_force_without_resume_is_a_user_error(tiny_gemma_dir, home, tmp_path):
    result = train(home, tiny_gemma_dir, tmp_path / "run", options=("--force",))
    assert_user_error(result, "--force only applies with --resume")
    assert not (tmp_path / "run").exists()


def test_train_column_error_names_the_recipe_keys_not_eval_options(tiny_gemma_dir, home, tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", src="English", tgt="Spanish")
    result = train(home, tiny_gemma_dir, tmp_path / "run", f"data.train={data}")
    assert_user_error(result, "'English'", "--set data.src_col=... --set data.tgt_col=...")
    assert "--src-col" not in result.output


def test_run_resume_force_of_a_training_change_keeps_the_base_evaluation(tiny_gemma_dir, home, tmp_path):
    run_dir = tmp_path / "run"
    first = invoke(home, "run", "translate-en-es", *sets(tiny_gemma_dir, run_dir))
    assert first.exit_code == 0, first.output
    before = manifest(run_dir)["stages"]
    result = invoke(
        home, "run", "translate-en-es", *sets(tiny_gemma_dir, run_dir, "train.lr=0.001"), "--resume", "--force"
    )
    assert result.exit_code == 0, result.output
    after = manifest(run_dir)["stages"]
    for stage in ("data", "eval_base"):
        assert after[stage] == before[stage], stage  # same record, same finish time: not re-run
    assert after["train"]["train_loss"] != before["train"]["train_loss"]  # retrained under the new lr
    assert manifest(run_dir)["forced_changes"][0]["invalidated"] == ["train", "eval_tuned", "report"]
    assert "eval_base test:" not in result.output and "eval_tuned test:" in result.output
    assert "Training lora" in result.output
    assert "before vs after" in result.output


def test_run_from_a_stage_reruns_it_and_the_later_ones_only(tiny_gemma_dir, home, tmp_path):
    run_dir = tmp_path / "run"
    first = invoke(home, "run", "translate-en-es", *sets(tiny_gemma_dir, run_dir))
    assert first.exit_code == 0, first.output
    before = manifest(run_dir)["stages"]
    model = file_checksums(run_dir / "model")
    result = invoke(home, "run", "translate-en-es", *sets(tiny_gemma_dir, run_dir), "--from", "eval_tuned")
    assert result.exit_code == 0, result.output
    after = manifest(run_dir)["stages"]
    for stage in ("data", "eval_base", "eval_base_zero_shot", "train"):
        assert after[stage] == before[stage], stage
    assert after["eval_tuned"]["fingerprint"] == before["eval_tuned"]["fingerprint"]
    assert "eval_tuned test:" in result.output and "eval_base test:" not in result.output
    assert "Training lora" not in result.output and "before vs after" in result.output
    assert file_checksums(run_dir / "model") == model
    assert not [p for p in run_dir.rglob(".*.previous*")]  # the earlier outputs were deleted once it succeeded


def test_an_edited_data_file_is_refused_under_resume_and_retrained_with_force(tiny_gemma_dir, home, tmp_path):
    run_dir, data = tmp_path / "run", tmp_path / "pairs.jsonl"
    rows = demo_records(60)
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert train(home, tiny_gemma_dir, run_dir, f"data.train={data}").exit_code == 0
    before = file_checksums(run_dir)
    rows[0] = {**rows[0], "en": rows[0]["en"] + " Thank you."}
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    result = train(home, tiny_gemma_dir, run_dir, f"data.train={data}", options=("--resume",))
    assert_user_error(result, f"data.train ({data}): its content changed", "--resume --force", "(data, train")
    assert file_checksums(run_dir) == before
    result = train(home, tiny_gemma_dir, run_dir, f"data.train={data}", options=("--resume", "--force"))
    assert result.exit_code == 0, result.output
    assert "Training lora" in result.output and "Resuming from step" not in result.output
    splits = "".join((run_dir / "data" / f"{s}.jsonl").read_text(encoding="utf-8") for s in ("train", "dev", "test"))
    assert json.dumps(rows[0]["en"], ensure_ascii=False) in splits  # the data stage read the edited file
    assert manifest(run_dir)["forced_changes"][-1]["invalidated"] == ["data", "train"]
