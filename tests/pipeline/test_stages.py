"""The stage runner: skip on an unchanged fingerprint, re-run what a change reaches, ``--from``,
nothing lost when a stage fails, and only the main process writes.

The stages here are small functions that count their calls and write files, over the bundled
translation recipe's keys; the real recipes run on the same runner in tests/pipeline/test_task_recipes.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cli_checks import assert_user_error, file_checksums, run_cli

import medtune.pipeline.stages as stages_module
from medtune import __version__
from medtune.data.demo import DEMO_DIR
from medtune.errors import MedtuneError
from medtune.pipeline.fingerprint import hash_input
from medtune.pipeline.stages import Stage, is_main_process, run_stages, stage_fingerprints
from medtune.recipes.loader import load_recipe
from medtune.runs import RunFolder

NAMES = ["data", "eval_base", "train", "eval_tuned", "report"]


class Pipeline:
    """Five stages shaped like a before/after recipe, each counting its runs and writing its outputs."""

    def __init__(self, run_dir: Path, data_file: Path):
        self.run_dir, self.data_file = run_dir, data_file
        self.calls: list[str] = []  # the stages the last go() ran
        self.runs: dict[str, int] = {}  # how often each stage ran, over every go()
        self.fail: str | None = None  # the stage that raises (after writing part of its outputs)
        self.seen: dict[str, str | None] = {}  # what a stage found in its first output when it began

    def recipe(self, *overrides: str):
        keys = [f"run_dir={self.run_dir}", f"data.train={self.data_file}", *overrides]
        return load_recipe("translate-en-es", keys)

    def stages(self, run: RunFolder) -> list[Stage]:
        def stage(name, reads, needs=(), files=(), outputs=(), writes=None):
            def work() -> dict:
                first = run.path / (writes or outputs)[0]
                self.seen[name] = first.read_text() if first.is_file() else None
                self.calls.append(name)
                self.runs[name] = self.runs.get(name, 0) + 1
                for i, out in enumerate(writes or outputs if run.writes else ()):  # only the main process writes
                    path = run.path / out
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(f"{name} run {self.runs[name]}")
                    if self.fail == name and i == 0:
                        raise RuntimeError(f"{name} failed")
                return {"runs": self.runs[name]}

            return Stage(name, work, reads, needs, files, outputs)

        return [
            stage("data", ("task", "seed", "data.*"), files=("data.train",), outputs=("data/train.jsonl",)),
            stage("eval_base", ("model", "eval.*"), ("data",), outputs=("eval/eval_base/metrics.json",)),
            stage(
                "train",
                ("model", "train.*"),
                ("data",),
                outputs=("model",),
                writes=("model/weights.bin", "model/c.json"),
            ),
            stage("eval_tuned", ("model", "eval.*"), ("data", "train"), outputs=("eval/eval_tuned/metrics.json",)),
            stage("report", ("*",), ("data", "eval_base", "train", "eval_tuned"), outputs=("report.html",)),
        ]

    def go(self, *overrides: str, resume=True, force=False, from_stage=None, log=None) -> list[str]:
        """Open the run folder and run the stages; returns the stages that ran."""
        self.calls.clear()
        recipe = self.recipe(*overrides)
        run = RunFolder(self.run_dir, recipe.name)
        stages = self.stages(run)
        run.open(recipe.model_dump(mode="json"), resume=resume, force=force, stages=stages, log=lambda _: None)
        run_stages(run, recipe, stages, from_stage, log=log or (lambda _: None))
        return list(self.calls)


@pytest.fixture
def pipe(tmp_path) -> Pipeline:
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"en": "Drink water.", "es": "Beba agua."}\n', encoding="utf-8")
    pipeline = Pipeline(tmp_path / "run", data)
    assert pipeline.go(resume=False) == NAMES
    return pipeline


def manifest(pipe: Pipeline) -> dict:
    return json.loads((pipe.run_dir / "run.json").read_text(encoding="utf-8"))


# Skipping and re-running


def test_unchanged_fingerprints_skip_every_stage(pipe):
    before = manifest(pipe)
    messages: list[str] = []
    assert pipe.go(log=messages.append) == []
    assert manifest(pipe) == before
    fingerprints = stage_fingerprints(RunFolder(pipe.run_dir, "translate-en-es"))
    assert list(fingerprints) == NAMES and len(set(fingerprints.values())) == 5
    assert messages[0] == f"Stage data: inputs unchanged (fingerprint {fingerprints['data'][:12]}), skipped."


def test_a_record_keeps_the_stage_result_with_its_fingerprint_and_provenance(pipe):
    record = manifest(pipe)["stages"]["train"]
    assert record["runs"] == 1 and len(record["fingerprint"]) == 64
    assert record["provenance"] == {
        "medtune": __version__,
        "files": {},
        "outputs": ["model"],
    }
    data = manifest(pipe)["stages"]["data"]["provenance"]["files"]
    assert data == {"data.train": hash_input(str(pipe.data_file))}


def test_the_fingerprint_is_sha256_of_version_settings_upstream_and_files(pipe):
    recipe = pipe.recipe()
    run = RunFolder(pipe.run_dir, recipe.name)
    content = pipe.data_file.read_bytes()
    file_hash = hashlib.sha256(str(pipe.data_file).encode() + b"\0" + content).hexdigest()
    data_values = {k: v for k, v in _flat(recipe).items() if k in ("task", "seed") or k.startswith("data.")}
    expected = {"medtune": __version__, "stage": "data", "reads": data_values, "needs": {}}
    expected["files"] = {"data.train": file_hash}
    canonical = json.dumps(expected, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    data_fp = hashlib.sha256(canonical.encode()).hexdigest()
    assert stage_fingerprints(run)["data"] == data_fp

    train_values = {k: v for k, v in _flat(recipe).items() if k == "model" or k.startswith("train.")}
    expected = {"medtune": __version__, "stage": "train", "reads": train_values, "needs": {"data": data_fp}}
    expected["files"] = {}
    canonical = json.dumps(expected, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert stage_fingerprints(run)["train"] == hashlib.sha256(canonical.encode()).hexdigest()


def _flat(recipe) -> dict:
    from medtune.runs import absolute_folders, flatten_settings

    return flatten_settings(absolute_folders(recipe.model_dump(mode="json")))


def test_input_hashes_of_a_folder_a_demo_file_and_a_hub_dataset(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_bytes(b"bee")
    (folder / "sub" / "a.txt").write_bytes(b"ay")
    expected = hashlib.sha256(str(folder).encode() + b"\0")
    for rel, content in (("b.txt", b"bee"), ("sub/a.txt", b"ay")):  # sorted by path
        expected.update(rel.encode() + b"\0" + content + b"\0")
    assert hash_input(str(folder)) == expected.hexdigest()
    (folder / "sub" / "a.txt").write_bytes(b"ay!")
    assert hash_input(str(folder)) != expected.hexdigest()

    demo = (DEMO_DIR / "medical_en_es.jsonl").read_bytes()
    spec = "demo:medical_en_es.jsonl"
    assert hash_input(spec) == hashlib.sha256(spec.encode() + b"\0" + demo).hexdigest()
    assert hash_input("hf:org/set:train") == hashlib.sha256(b"hf:org/set:train\0").hexdigest()
    assert hash_input(None) is None
    assert hash_input(str(tmp_path / "gone.csv")) != hash_input(str(tmp_path / "other.csv"))


@pytest.mark.parametrize(
    ("change", "reruns"),
    [
        ("train.lr=0.001", ["train", "eval_tuned", "report"]),
        ("eval.limit=3", ["eval_base", "eval_tuned", "report"]),
        ("description=new words", ["report"]),
        ("data.test_size=0.2", NAMES),
    ],
)
def test_a_changed_key_reruns_its_stages_and_those_after_them_not_earlier_ones(pipe, change, reruns):
    before = manifest(pipe)["stages"]
    with pytest.raises(MedtuneError, match="--resume --force"):
        pipe.go(change)
    assert pipe.go(change, force=True) == reruns
    after = manifest(pipe)["stages"]
    for name in NAMES:
        assert (after[name] == before[name]) is (name not in reruns), name
    assert pipe.go(change) == []  # the accepted change is the run's recipe now


def test_a_changed_input_file_is_refused_under_resume_and_reruns_everything_with_force(pipe):
    before = file_checksums(pipe.run_dir)
    pipe.data_file.write_text('{"en": "Rest.", "es": "Descanse."}\n', encoding="utf-8")
    with pytest.raises(MedtuneError) as err:
        pipe.go()
    message = str(err.value)
    assert f"data.train ({pipe.data_file}): its content changed" in message
    assert "--resume --force" in message and "(data, eval_base, train, eval_tuned, report)" in message
    assert file_checksums(pipe.run_dir) == before

    assert pipe.go(force=True) == NAMES
    [forced] = manifest(pipe)["forced_changes"]
    assert forced["changed"] == [f"data.train ({pipe.data_file}): its content changed"]
    assert forced["invalidated"] == NAMES
    assert pipe.go() == []


def test_missing_outputs_rerun_only_their_stage(pipe):
    (pipe.run_dir / "eval" / "eval_base" / "metrics.json").unlink()
    messages: list[str] = []
    assert pipe.go(log=messages.append) == ["eval_base"]
    assert f"Stage eval_base: eval/eval_base/metrics.json no longer in {pipe.run_dir}; running it again." in messages


# --from


@pytest.mark.parametrize(
    ("start", "reruns"), [("train", ["train", "eval_tuned", "report"]), ("eval_base", NAMES[1:]), ("data", NAMES)]
)
def test_from_reruns_the_named_stage_and_every_later_one(pipe, start, reruns):
    before = manifest(pipe)["stages"]
    assert pipe.go(from_stage=start) == reruns
    after = manifest(pipe)["stages"]
    for name in NAMES:
        assert (after[name]["finished"], after[name]["runs"]) == (
            (before[name]["finished"], 1) if name not in reruns else (after[name]["finished"], 2)
        )
        assert after[name]["fingerprint"] == before[name]["fingerprint"]  # same inputs, same fingerprint
    assert (pipe.run_dir / "model" / "weights.bin").read_text() == f"train run {1 if 'train' not in reruns else 2}"


def test_an_unknown_from_stage_lists_the_stages(pipe):
    before = file_checksums(pipe.run_dir)
    with pytest.raises(MedtuneError) as err:
        pipe.go(from_stage="evaluate")
    assert str(err.value) == (
        "--from evaluate: this command has no stage of that name; its stages, in order: "
        "data, eval_base, train, eval_tuned, report."
    )
    assert file_checksums(pipe.run_dir) == before


# Nothing lost


def test_a_failing_stage_puts_its_earlier_outputs_back_and_leaves_run_json_alone(pipe):
    checkpoint = pipe.run_dir / "model" / "checkpoints" / "last" / "state.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"resumable")
    before, run_json = file_checksums(pipe.run_dir), (pipe.run_dir / "run.json").read_bytes()
    pipe.fail = "train"
    with pytest.raises(RuntimeError, match="train failed"):
        pipe.go(from_stage="eval_base")
    assert pipe.calls == ["eval_base", "train"]
    assert pipe.seen["train"] is None  # it ran on a clean folder: its earlier outputs were aside
    # eval_base's new result stands; train's earlier model (and the checkpoint) is back; nothing else changed
    after = file_checksums(pipe.run_dir)
    assert after.pop("eval/eval_base/metrics.json") != before.pop("eval/eval_base/metrics.json")
    assert after.pop("run.json") != before.pop("run.json")
    assert after == before
    assert (
        json.loads((pipe.run_dir / "run.json").read_text())["stages"]["train"]
        == json.loads(run_json)["stages"]["train"]
    )
    assert not [p for p in pipe.run_dir.rglob(".*.previous*")]

    pipe.fail = None
    run_json = (pipe.run_dir / "run.json").read_bytes()
    pipe.fail = "eval_tuned"
    with pytest.raises(RuntimeError):
        pipe.go(from_stage="eval_tuned")
    assert (pipe.run_dir / "run.json").read_bytes() == run_json  # byte for byte
    pipe.fail = None
    assert pipe.go() == []  # the earlier results are whole again: nothing to redo


def test_a_rerun_killed_midway_is_put_back_by_the_next_command(pipe, monkeypatch):
    before = file_checksums(pipe.run_dir)
    record = manifest(pipe)["stages"]["train"]
    pipe.fail = "train"
    with monkeypatch.context() as patch:  # the process dies inside the stage: nothing puts back
        patch.setattr(stages_module, "put_back", lambda run, stage: False)
        with pytest.raises(RuntimeError):
            pipe.go(from_stage="train")
    assert (pipe.run_dir / ".model.previous" / "weights.bin").read_text() == "train run 1"
    pipe.fail = None
    messages: list[str] = []
    assert pipe.go(log=messages.append) == []
    assert "Put back the outputs of stage train that an interrupted re-run had set aside." in messages
    assert file_checksums(pipe.run_dir) == before
    assert manifest(pipe)["stages"]["train"] == record


def test_partial_work_of_a_first_attempt_is_resumed_but_not_work_of_other_inputs(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"en": "Rest.", "es": "Descanse."}\n', encoding="utf-8")
    pipe = Pipeline(tmp_path / "run", data)
    pipe.fail = "train"
    with pytest.raises(RuntimeError):
        pipe.go(resume=False)
    assert manifest(pipe)["attempts"] == {"train": stage_fingerprints_of(pipe)["train"]}
    pipe.fail = None
    assert pipe.go() == ["train", "eval_tuned", "report"]
    assert pipe.seen["train"] == "train run 1"  # found its partial output, to continue from
    assert "attempts" not in manifest(pipe)

    pipe.fail = "train"
    with pytest.raises(RuntimeError):
        pipe.go("train.lr=0.001", force=True)
    pipe.fail = None
    assert pipe.go("train.lr=0.002", force=True) == ["train", "eval_tuned", "report"]
    assert pipe.seen["train"] is None  # partial work of lr=0.001 was set aside, not continued


def stage_fingerprints_of(pipe: Pipeline) -> dict[str, str]:
    recipe = pipe.recipe()
    return {name: inputs.fingerprint for name, inputs in stages_module._inputs(pipe.stages(None), recipe).items()}


# Only the main process writes


@pytest.mark.parametrize(
    ("env", "main"),
    [
        ({}, True),
        ({"RANK": "0"}, True),
        ({"RANK": "1"}, False),
        ({"LOCAL_RANK": "2"}, False),
        ({"RANK": "0", "LOCAL_RANK": "1"}, True),
    ],
)
def test_is_main_process_reads_rank_then_local_rank(monkeypatch, env, main):
    for name in ("RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_main_process() is main


def test_a_process_other_than_the_main_one_runs_the_stages_but_writes_no_run_json(tmp_path, monkeypatch):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"en": "Rest.", "es": "Descanse."}\n', encoding="utf-8")
    monkeypatch.setenv("RANK", "1")
    pipe = Pipeline(tmp_path / "run", data)
    assert pipe.go(resume=False) == NAMES
    assert not pipe.run_dir.exists()

    monkeypatch.setenv("RANK", "0")
    assert pipe.go() == NAMES  # the main process found no record: everything runs, and is recorded
    run_json = (pipe.run_dir / "run.json").read_bytes()
    monkeypatch.setenv("RANK", "1")
    assert pipe.go(from_stage="train") == ["train", "eval_tuned", "report"]
    assert (pipe.run_dir / "run.json").read_bytes() == run_json


# The CLI


@pytest.mark.parametrize(
    ("command", "listed"),
    [
        (
            "run",
            "medtune run has no stage of that name; its stages, in order: data, eval_base, "
            "eval_base_zero_shot, train, eval_tuned, report.",
        ),
        ("train", "medtune train has no stage of that name; its stages, in order: data, train."),
    ],
)
def test_cli_from_an_unknown_stage_is_a_user_error(tmp_path, command, listed):
    no_model = f"model={tmp_path / 'no-model'}"  # were the option not refused, nothing heavy would load
    args = [command, "translate-en-es", "--set", f"run_dir={tmp_path / 'run'}", "--set", no_model, "--from", "x"]
    args[-1] = "eval_base" if command == "train" else "eval_base_fewshot"
    result = run_cli(args, home=tmp_path / "home")
    assert_user_error(result, f"--from {args[-1]}: {listed}")
    assert not (tmp_path / "run").exists()


def test_a_stage_whose_output_is_the_run_folder_itself_never_moves_it(tmp_path):
    # output_dir may be the run folder: re-training there must not set aside run.json and the rest
    recipe = load_recipe("translate-en-es", [f"run_dir={tmp_path / 'run'}", f"output_dir={tmp_path / 'run'}"])
    run = RunFolder(tmp_path / "run", recipe.name)
    calls: list[str] = []

    def train() -> dict:
        calls.append("train")
        (run.path / "weights.bin").write_text(f"run {len(calls)}")
        return {}

    stages = [Stage("train", train, ("train.*",), outputs=(str(tmp_path / "run"),))]
    run.open(recipe.model_dump(mode="json"), stages=stages, log=lambda _: None)
    run_stages(run, recipe, stages, log=lambda _: None)
    run.open(recipe.model_dump(mode="json"), resume=True, stages=stages, log=lambda _: None)
    run_stages(run, recipe, stages, from_stage="train", log=lambda _: None)
    assert calls == ["train", "train"]
    assert sorted(p.name for p in run.path.iterdir()) == ["run.json", "weights.bin"]
    assert "set_aside" not in run.manifest() and run.done("train")["provenance"]["outputs"] == [str(run.path)]


def test_the_base_model_is_loaded_once_for_both_base_stages_and_freed_before_training(
    tiny_gemma_dir, tmp_path, monkeypatch
):
    import gc
    import weakref

    import medtune.models.loading as loading
    import medtune.train.setup as setup

    real_load = loading.load_model
    loads: list[tuple[str, bool]] = []  # (model, every model loaded before it was freed by then)
    alive: list[weakref.ref] = []

    def counting_load(name, *args, **kwargs):  # the real loader, counted
        gc.collect()
        loads.append((str(name), all(ref() is None for ref in alive)))
        loaded = real_load(name, *args, **kwargs)
        alive.append(weakref.ref(loaded.model))
        return loaded

    monkeypatch.setattr(loading, "load_model", counting_load)
    monkeypatch.setattr(setup, "load_model", counting_load)
    run_dir = tmp_path / "run"
    keys = [f"model={tiny_gemma_dir}", f"run_dir={run_dir}", "data.general=null", "train.max_steps=1"]
    keys += ["train.batch_size=4", "train.max_length=64", "eval.few_shot=1", "eval.limit=2", "eval.max_new_tokens=2"]
    args = ["run", "translate-en-es", *[a for k in keys for a in ("--set", k)]]
    result = run_cli(args, home=tmp_path / "home")
    assert result.exit_code == 0, result.output
    # eval_base and eval_base_zero_shot share one load; training and the fine-tune's scoring load
    # only once the base is gone
    assert loads == [(str(tiny_gemma_dir), True), (str(tiny_gemma_dir), True), (str(run_dir / "model"), True)]

    loads.clear()
    result = run_cli([*args, "--from", "eval_base_zero_shot"], home=tmp_path / "home")
    assert result.exit_code == 0, result.output
    assert [name for name, _ in loads] == [str(tiny_gemma_dir), str(tiny_gemma_dir), str(run_dir / "model")]
    assert "eval_base test:" not in result.output and "eval_base_zero_shot test:" in result.output
