"""The run folder refuses, resumes, re-runs or replaces, and never loses a file medtune did not make.

(The forgetting verdict is tested with the translation report, tests/report/test_translation_report.py.)"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cli_checks import file_checksums

from medtune.errors import MedtuneError
from medtune.pipeline import recipe_stages
from medtune.recipes.loader import load_recipe, recipe_to_yaml
from medtune.runs import (
    CHECKPOINTS,
    RunFolder,
    changed_settings,
    recipe_hash,
    remove_checkpoints,
    stages_to_rerun,
)

FINISHED = ("data", "eval_base", "eval_base_zero_shot", "train", "eval_tuned", "report")


def settings(run_dir: Path, *overrides: str) -> dict:
    """The resolved bundled translation recipe with ``run_dir`` and ``--set`` style overrides."""
    return load_recipe("translate-en-es", [f"run_dir={run_dir}", *overrides]).model_dump(mode="json")


def translation_stages(run_dir: Path) -> list:
    """The bundled translation recipe's stages (what each reads; nothing runs)."""
    recipe = load_recipe("translate-en-es", [f"run_dir={run_dir}"])
    return recipe_stages(recipe, RunFolder(run_dir, recipe.name))


STAGES = [s.name for s in translation_stages(Path("runs/x"))]


def opened(run_dir: Path, *overrides: str, **options) -> RunFolder:
    run = RunFolder(run_dir, "translate-en-es")
    run.open(settings(run_dir, *overrides), log=lambda _: None, stages=translation_stages(run_dir), **options)
    return run


def finished_run(run_dir: Path, *overrides: str) -> RunFolder:
    """A run whose every stage is recorded as done, with a model folder and a user's-eye set of files."""
    run = opened(run_dir, *overrides)
    for stage in FINISHED:
        run.mark_done(stage, {"stage": stage})
    (run_dir / "model").mkdir()
    (run_dir / "model" / "medtune_model.json").write_text("{}")
    (run_dir / "model" / "adapter_model.safetensors").write_bytes(b"weights")
    return run


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


def user_files(folder: Path) -> dict[str, str]:
    """Write a user's own files (names medtune also writes) and return their checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in {"README.md": "# my notes", "metrics.json": '{"mine": 1}', "recipe.yaml": "x: 1"}.items():
        (folder / name).write_text(text)
    return file_checksums(folder)


# The manifest and the recipe hash


def test_new_folder_gets_a_manifest_with_the_resolved_recipe_and_its_hash(tmp_path):
    run = opened(tmp_path / "runs" / "a")
    resolved = settings(tmp_path / "runs" / "a")
    canonical = json.dumps(resolved, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert manifest(run.path) == {
        "recipe": "translate-en-es",
        "recipe_hash": hashlib.sha256(canonical.encode()).hexdigest(),
        "resolved_recipe": resolved,
        "stages": {},
    }
    assert run.sub("eval", "x.json") == tmp_path / "runs" / "a" / "eval" / "x.json"
    assert run.resume_training is False


def test_recipe_hash_ignores_key_order_and_sees_every_value():
    assert recipe_hash({"a": 1, "b": {"c": 2, "d": 3}}) == recipe_hash({"b": {"d": 3, "c": 2}, "a": 1})
    assert recipe_hash({"a": 1, "b": {"c": 2}}) != recipe_hash({"a": 1, "b": {"c": 3}})


def test_changed_settings_are_named_as_dotted_keys():
    old = {"train": {"max_steps": 200, "lora": {"r": 16}}, "data": {"train": "a.csv", "test": None}, "x": ""}
    new = {"train": {"max_steps": 300, "lora": {"r": 16}}, "data": {"train": "b.csv", "test": "t.csv"}, "y": [1]}
    assert [str(c) for c in changed_settings(old, new)] == [
        "train.max_steps: 200 -> 300",
        "data.train: a.csv -> b.csv",
        "data.test: null -> t.csv",
        "y: (unset) -> [1]",
        'x: "" -> (unset)',
    ]
    assert changed_settings(old, old) == []


@pytest.mark.parametrize(
    ("changed", "rerun"),
    [
        (["description"], ["report"]),
        (["name"], ["report"]),
        (["eval.report_samples"], ["eval_base", "eval_base_zero_shot", "eval_tuned", "report"]),
        (["eval.limit", "eval.few_shot"], ["eval_base", "eval_base_zero_shot", "eval_tuned", "report"]),
        (["train.max_steps"], ["train", "eval_tuned", "report"]),
        (["train.lora.r"], ["train", "eval_tuned", "report"]),
        (["output_dir"], ["train", "eval_tuned", "report"]),
        (["device"], ["eval_base", "eval_base_zero_shot", "train", "eval_tuned", "report"]),
        (["model"], ["eval_base", "eval_base_zero_shot", "train", "eval_tuned", "report"]),
        (["data.train"], list(STAGES)),
        (["seed"], list(STAGES)),
        (["task"], list(STAGES)),
        ([], []),
    ],
)
def test_stages_to_rerun_follow_what_each_stage_reads(changed, rerun):
    assert list(FINISHED) == STAGES
    assert stages_to_rerun(changed, translation_stages(Path("runs/x"))) == rerun


def test_a_finished_stage_the_recipe_does_not_list_is_rerun_on_any_change():
    stages = translation_stages(Path("runs/x"))
    assert stages_to_rerun(["description"], stages, ["data", "eval_extra"]) == ["report", "eval_extra"]
    assert stages_to_rerun([], stages, ["data", "eval_extra"]) == []


# Refusing, resuming and forcing


def test_existing_run_is_refused_without_resume_or_overwrite(tmp_path):
    finished_run(tmp_path / "a")
    before = file_checksums(tmp_path / "a")
    with pytest.raises(MedtuneError) as err:
        opened(tmp_path / "a")
    message = str(err.value)
    assert str(tmp_path / "a") in message and "(translate-en-es)" in message
    assert "--resume" in message and "--overwrite" in message and "--set run_dir=" in message
    assert file_checksums(tmp_path / "a") == before


def test_resume_with_the_same_recipe_keeps_finished_stages_and_the_checkpoint(tmp_path):
    finished_run(tmp_path / "a", "train.max_steps=200")
    checkpoint = tmp_path / "a" / "model" / CHECKPOINTS / "last"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.pt").write_bytes(b"state")
    before = manifest(tmp_path / "a")
    run = opened(tmp_path / "a", "train.max_steps=200", resume=True)
    assert manifest(tmp_path / "a") == before
    assert run.resume_training is True
    run.start_training()
    assert (checkpoint / "state.pt").read_bytes() == b"state"


def test_resume_with_a_changed_recipe_is_refused_naming_the_keys(tmp_path):
    finished_run(tmp_path / "a", "train.max_steps=200", "data.train=a.csv")
    before = file_checksums(tmp_path / "a")
    with pytest.raises(MedtuneError) as err:
        opened(tmp_path / "a", "train.max_steps=300", "data.train=b.csv", resume=True)
    message = str(err.value)
    assert "data.train: a.csv -> b.csv; train.max_steps: 200 -> 300" in message
    assert "--resume --force" in message and "--overwrite" in message and "--set run_dir=" in message
    assert "(data, eval_base, eval_base_zero_shot, train, eval_tuned, report; training starts from step 0)" in message
    assert "\n" not in message
    assert file_checksums(tmp_path / "a") == before


def test_resume_force_forgets_the_stages_the_change_reaches_and_records_it(tmp_path):
    finished_run(tmp_path / "a", "train.max_steps=200")
    checkpoint = tmp_path / "a" / "model" / CHECKPOINTS / "last"
    checkpoint.mkdir(parents=True)
    (checkpoint / "state.pt").write_bytes(b"state of the old recipe")
    old = manifest(tmp_path / "a")
    messages = []
    run = RunFolder(tmp_path / "a", "translate-en-es")
    stages = translation_stages(tmp_path / "a")
    run.open(
        settings(tmp_path / "a", "train.max_steps=300"), resume=True, force=True, stages=stages, log=messages.append
    )

    now = manifest(tmp_path / "a")
    assert set(now["stages"]) == {"data", "eval_base", "eval_base_zero_shot"}
    assert now["stages"]["data"] == old["stages"]["data"]
    assert now["recipe_hash"] == recipe_hash(settings(tmp_path / "a", "train.max_steps=300")) != old["recipe_hash"]
    [forced] = now["forced_changes"]
    assert forced["old_hash"] == old["recipe_hash"] and forced["new_hash"] == now["recipe_hash"]
    assert forced["changed"] == ["train.max_steps: 200 -> 300"]
    assert forced["invalidated"] == ["train", "eval_tuned", "report"]
    assert messages == [
        "--force: the recipe changed (train.max_steps: 200 -> 300); re-running train, eval_tuned, report."
    ]
    # The old model stays until the new training replaces it; its checkpoint is never resumed.
    assert run.resume_training is False and now["train_restart"] is True
    assert (tmp_path / "a" / "model" / "adapter_model.safetensors").read_bytes() == b"weights"
    run.start_training()
    assert not (tmp_path / "a" / "model" / CHECKPOINTS).exists()
    assert "train_restart" not in manifest(tmp_path / "a")


def test_train_restart_survives_a_failure_before_training_began(tmp_path):
    finished_run(tmp_path / "a", "train.lr=0.001")
    opened(tmp_path / "a", "train.lr=0.002", resume=True, force=True)
    # e.g. eval_base crashed: a plain --resume of the new recipe must still not resume old checkpoints
    again = opened(tmp_path / "a", "train.lr=0.002", resume=True)
    assert again.resume_training is False


def test_a_change_that_no_stage_but_the_report_reads_keeps_the_model(tmp_path):
    finished_run(tmp_path / "a")
    run = opened(tmp_path / "a", "description=new words", resume=True, force=True)
    assert set(manifest(tmp_path / "a")["stages"]) == set(FINISHED) - {"report"}
    assert run.resume_training is True


def test_force_needs_resume_and_resume_excludes_overwrite(tmp_path):
    with pytest.raises(MedtuneError, match="--force only applies with --resume"):
        opened(tmp_path / "a", force=True)
    with pytest.raises(MedtuneError, match="pass one of them"):
        opened(tmp_path / "a", resume=True, overwrite=True)
    assert not (tmp_path / "a").exists()


def test_the_same_folders_written_differently_are_no_change(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    finished_run(Path("runs/a"), "output_dir=runs/a/model")
    run = opened(Path("./runs/a"), "output_dir=./runs/../runs/a/model", resume=True)
    assert run.resume_training is True
    assert manifest(tmp_path / "runs" / "a")["resolved_recipe"]["output_dir"] == str(tmp_path / "runs" / "a" / "model")


def test_resume_of_another_recipe_is_refused(tmp_path):
    first = RunFolder(tmp_path / "a", "recipe-one")
    first.open(settings(tmp_path / "a"))
    first.mark_done("data", {})
    with pytest.raises(MedtuneError, match="holds a run of recipe 'recipe-one', not 'recipe-two'"):
        RunFolder(tmp_path / "a", "recipe-two").open(settings(tmp_path / "a"), resume=True)


def test_a_run_json_from_before_recipes_were_recorded_is_compared_with_its_recipe_yaml(tmp_path):
    run_dir = tmp_path / "a"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"recipe": "translate-en-es", "stages": {"data": {}}}))
    old = load_recipe("translate-en-es", [f"run_dir={run_dir}", "train.max_steps=5"])
    (run_dir / "recipe.yaml").write_text(recipe_to_yaml(old))
    with pytest.raises(MedtuneError, match="train.max_steps: 5 -> 6"):
        opened(run_dir, "train.max_steps=6", resume=True)
    opened(run_dir, "train.max_steps=5", resume=True)


# Nothing lost


def test_an_attempt_that_finished_no_stage_does_not_block_the_next(tmp_path):
    first = opened(tmp_path / "a", "data.train=typo.csv")
    (tmp_path / "a" / "notes.txt").write_text("mine")  # a user's file in it is kept, not deleted
    before = (tmp_path / "a" / "notes.txt").read_bytes()
    assert first.done("data") is None
    again = opened(tmp_path / "a", "data.train=fixed.csv")
    assert manifest(tmp_path / "a")["resolved_recipe"]["data"]["train"] == "fixed.csv"
    assert again.resume_training is False
    assert (tmp_path / "a" / "notes.txt").read_bytes() == before


@pytest.mark.parametrize("options", [{}, {"resume": True}, {"overwrite": True}, {"resume": True, "force": True}])
def test_a_folder_medtune_did_not_make_is_refused_whatever_the_options(tmp_path, options):
    before = user_files(tmp_path / "mine")
    with pytest.raises(MedtuneError) as err:
        opened(tmp_path / "mine", **options)
    message = str(err.value)
    assert f"The run folder {tmp_path / 'mine'} holds files but no run.json" in message
    assert "--set run_dir=<new folder>" in message
    assert file_checksums(tmp_path / "mine") == before


@pytest.mark.parametrize("options", [{}, {"resume": True}, {"overwrite": True}])
def test_an_output_dir_of_unrelated_files_is_refused_whatever_the_options(tmp_path, options):
    if options:
        finished_run(tmp_path / "a", f"output_dir={tmp_path / 'mine'}")
    before = user_files(tmp_path / "mine")
    run_before = file_checksums(tmp_path / "a") if options else {}
    with pytest.raises(MedtuneError) as err:
        opened(tmp_path / "a", f"output_dir={tmp_path / 'mine'}", **options)
    message = str(err.value)
    assert f"output_dir {tmp_path / 'mine'} holds files that medtune did not write" in message
    assert "--set output_dir=<folder>" in message
    assert file_checksums(tmp_path / "mine") == before
    assert (file_checksums(tmp_path / "a") if options else {}) == run_before


def test_an_output_dir_with_a_medtune_model_is_replaced_only_when_asked(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "medtune_model.json").write_text("{}")
    with pytest.raises(MedtuneError, match="already holds a medtune model. Pass --overwrite"):
        opened(tmp_path / "a", f"output_dir={model}")
    with pytest.raises(MedtuneError, match="already holds a medtune model that this run did not train"):
        opened(tmp_path / "a", f"output_dir={model}", resume=True)
    opened(tmp_path / "a", f"output_dir={model}", overwrite=True)
    # the run that trained it may resume into it
    RunFolder(tmp_path / "a", "translate-en-es").mark_done("train", {})
    opened(tmp_path / "a", f"output_dir={model}", resume=True)


def test_overwrite_deletes_the_old_run_only_once_the_new_data_stage_finished(tmp_path):
    finished_run(tmp_path / "a")
    run = opened(tmp_path / "a", "train.max_steps=9", overwrite=True)
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith(".a.replaced-")]
    assert (aside / "model" / "adapter_model.safetensors").read_bytes() == b"weights"
    assert manifest(tmp_path / "a")["stages"] == {}
    run.mark_done("data", {"train": 3})
    assert not aside.exists()
    assert not (tmp_path / "a" / "model").exists()
    assert list(manifest(tmp_path / "a")["stages"]) == ["data"]
    assert "replacing" not in manifest(tmp_path / "a")


def test_a_failed_overwrite_puts_the_old_run_back(tmp_path):
    finished_run(tmp_path / "a")
    before = file_checksums(tmp_path / "a")
    run = opened(tmp_path / "a", "data.train=typo.csv", overwrite=True)
    (tmp_path / "a" / "data").mkdir()  # what the failed data stage may have begun
    assert run.put_back_replaced_run() is True
    assert file_checksums(tmp_path / "a") == before
    assert [p.name for p in tmp_path.iterdir()] == ["a"]
    assert run.put_back_replaced_run() is False


def test_an_overwrite_killed_before_its_data_stage_is_undone_by_the_next_command(tmp_path):
    finished_run(tmp_path / "a")
    before = file_checksums(tmp_path / "a")
    opened(tmp_path / "a", overwrite=True)  # then killed: no stage finished, nothing put back
    with pytest.raises(MedtuneError, match="already holds a run"):
        opened(tmp_path / "a")
    assert file_checksums(tmp_path / "a") == before
    assert [p.name for p in tmp_path.iterdir()] == ["a"]


def test_remove_checkpoints_deletes_only_medtunes_checkpoint_folder(tmp_path):
    (tmp_path / "m" / CHECKPOINTS / "last").mkdir(parents=True)
    (tmp_path / "m" / CHECKPOINTS / "last" / "state.pt").write_bytes(b"s")
    (tmp_path / "m" / "adapter_model.safetensors").write_bytes(b"w")
    remove_checkpoints(tmp_path / "m")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["adapter_model.safetensors"]

    (tmp_path / "u" / CHECKPOINTS / "last").mkdir(parents=True)
    (tmp_path / "u" / CHECKPOINTS / "my_notes.txt").write_text("mine")
    remove_checkpoints(tmp_path / "u")
    assert (tmp_path / "u" / CHECKPOINTS / "my_notes.txt").read_text() == "mine"


def test_mark_done_and_done_round_trip(tmp_path):
    run = opened(tmp_path / "a")
    assert run.done("train") is None
    run.mark_done("train", {"steps": 12, "train_loss": 1.5})
    result = run.done("train")
    assert {k: result[k] for k in ("steps", "train_loss")} == {"steps": 12, "train_loss": 1.5}
    assert set(result) == {"steps", "train_loss", "finished"}
    assert run.done("eval_base") is None


# Several processes: the main process writes, the others keep run.json in memory


def test_a_process_that_does_not_write_adopts_the_main_process_run_json(tmp_path):
    main = finished_run(tmp_path / "a")
    other = RunFolder(tmp_path / "a", "translate-en-es", writes=False)
    other.open(settings(tmp_path / "a"), resume=True, log=lambda _: None, stages=translation_stages(tmp_path / "a"))
    before = file_checksums(tmp_path / "a")
    other.mark_done("report", {"stage": "report", "mine": True})  # kept in memory only
    assert other.done("report")["mine"] and file_checksums(tmp_path / "a") == before
    main.mark_done("eval_tuned", {"stage": "eval_tuned", "again": 1})
    other.adopt_written()
    assert other.manifest() == manifest(tmp_path / "a")  # the main process's records, its own forgotten
    assert "mine" not in other.done("report") and other.done("eval_tuned")["again"] == 1


def test_only_the_main_process_puts_back_a_replaced_run(tmp_path):
    finished_run(tmp_path / "a")
    opened(tmp_path / "a", "data.train=typo.csv", overwrite=True)  # the main process set the old run aside
    other = RunFolder(tmp_path / "a", "translate-en-es", writes=False)
    other.open(settings(tmp_path / "a", "data.train=typo.csv"), overwrite=True, log=lambda _: None)
    other.adopt_written()  # it knows what the main process set aside
    assert "replacing" in other.manifest()
    after = file_checksums(tmp_path / "a")
    assert other.put_back_replaced_run() is False  # a failed stage: only the main process moves folders
    assert file_checksums(tmp_path / "a") == after
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".a.replaced-")]) == 1
