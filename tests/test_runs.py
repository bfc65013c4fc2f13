"""The run folder refuses, resumes or replaces; the forgetting verdict uses its threshold."""

from __future__ import annotations

import json

import pytest

from medtune.errors import MedtuneError
from medtune.report.translation import forgetting_verdict
from medtune.runs import RunFolder


def test_new_folder_gets_a_manifest(tmp_path):
    run = RunFolder(tmp_path / "runs" / "a", "translate-en-es")
    run.open(resume=False, overwrite=False)
    assert json.loads(run.manifest_path.read_text()) == {"recipe": "translate-en-es", "stages": {}}
    assert run.sub("eval", "x.json") == tmp_path / "runs" / "a" / "eval" / "x.json"


def test_existing_empty_folder_is_accepted(tmp_path):
    (tmp_path / "a").mkdir()
    RunFolder(tmp_path / "a", "r").open(resume=False, overwrite=False)
    assert (tmp_path / "a" / "run.json").is_file()


def test_mark_done_and_done_round_trip(tmp_path):
    run = RunFolder(tmp_path / "a", "r")
    run.open(resume=False, overwrite=False)
    assert run.done("train") is None
    run.mark_done("train", {"steps": 12, "train_loss": 1.5})
    result = run.done("train")
    assert {k: result[k] for k in ("steps", "train_loss")} == {"steps": 12, "train_loss": 1.5}
    assert set(result) == {"steps", "train_loss", "finished"}
    assert run.done("eval_base") is None


def test_existing_run_is_refused_without_resume_or_overwrite(tmp_path):
    first = RunFolder(tmp_path / "a", "translate-en-es")
    first.open(resume=False, overwrite=False)
    first.mark_done("data", {"train": 10})
    with pytest.raises(MedtuneError) as err:
        RunFolder(tmp_path / "a", "translate-en-es").open(resume=False, overwrite=False)
    message = str(err.value)
    assert str(tmp_path / "a") in message and "(translate-en-es)" in message
    assert "--resume" in message and "--overwrite" in message
    # Nothing was lost by the refusal.
    assert first.done("data")["train"] == 10


def test_folder_with_foreign_files_is_refused(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("mine")
    with pytest.raises(MedtuneError, match="already holds a run \\(another run\\)"):
        RunFolder(tmp_path / "a", "r").open(resume=False, overwrite=False)


def test_resume_keeps_finished_stages(tmp_path):
    first = RunFolder(tmp_path / "a", "r")
    first.open(resume=False, overwrite=False)
    first.mark_done("data", {"train": 10})
    (tmp_path / "a" / "data.jsonl").write_text("{}\n")
    again = RunFolder(tmp_path / "a", "r")
    again.open(resume=True, overwrite=False)
    assert again.done("data")["train"] == 10
    assert (tmp_path / "a" / "data.jsonl").is_file()
    again.mark_done("train", {"steps": 3})
    assert set(json.loads(again.manifest_path.read_text())["stages"]) == {"data", "train"}


def test_resume_of_another_recipe_is_refused(tmp_path):
    RunFolder(tmp_path / "a", "recipe-one").open(resume=False, overwrite=False)
    with pytest.raises(MedtuneError, match="holds a run of recipe 'recipe-one', not 'recipe-two'"):
        RunFolder(tmp_path / "a", "recipe-two").open(resume=True, overwrite=False)


def test_overwrite_replaces_the_run(tmp_path):
    first = RunFolder(tmp_path / "a", "r")
    first.open(resume=False, overwrite=False)
    first.mark_done("train", {"steps": 3})
    (tmp_path / "a" / "model").mkdir()
    (tmp_path / "a" / "model" / "weights.bin").write_bytes(b"x")
    again = RunFolder(tmp_path / "a", "other")
    again.open(resume=False, overwrite=True)
    assert again.done("train") is None
    assert not (tmp_path / "a" / "model").exists()
    assert json.loads(again.manifest_path.read_text()) == {"recipe": "other", "stages": {}}


def _general(chrf: float) -> dict:
    return {"test": {"chrf": 40.0}, "general": {"chrf": chrf}}


def test_forgetting_flagged_above_threshold():
    verdict = forgetting_verdict(_general(50.0), _general(47.0), threshold=2.0)
    assert verdict["checked"] is True and verdict["forgetting"] is True
    assert (verdict["drop"], verdict["threshold"]) == (3.0, 2.0)
    assert verdict["message"] == "FORGETTING: general-domain chrF fell by 3.00 points (threshold 2.0)."


@pytest.mark.parametrize(("after", "change"), [(48.5, "-1.50"), (48.0, "-2.00"), (53.25, "+3.25")])
def test_no_forgetting_at_or_below_threshold(after, change):
    verdict = forgetting_verdict(_general(50.0), _general(after), threshold=2.0)
    assert verdict["checked"] is True and verdict["forgetting"] is False
    assert verdict["drop"] == round(50.0 - after, 4)
    assert verdict["message"].startswith(f"No forgetting: general-domain chrF changed by {change} points")


def test_forgetting_not_checked_without_general_set():
    verdict = forgetting_verdict({"test": {"chrf": 40.0}}, {"test": {"chrf": 45.0}}, threshold=2.0)
    assert verdict == {"checked": False, "message": "No general-domain set: forgetting was not checked."}
