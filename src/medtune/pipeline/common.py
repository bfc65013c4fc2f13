"""What every task's pipeline shares: opening the run folder, and the stages of the before/after loop.

``before_after_stages`` lists the stages every task runs (each task supplies its data stage and
how to score, train and report): data -> eval_base [-> eval_base_zero_shot] -> train ->
eval_tuned -> report. ``pipeline/stages.py`` runs them, skipping those whose inputs are unchanged.
Under several processes the data and report stages run on the main process (the others read the
data it wrote), training and the evaluations on every process (each scores its share of the items).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from medtune.data.sampling import eval_count, split_items
from medtune.data.validate import ValidationReport, left_after
from medtune.errors import MedtuneError
from medtune.pipeline.stages import Stage
from medtune.recipes.loader import recipe_to_yaml
from medtune.recipes.schema import Recipe
from medtune.report.comparison import Evaluations
from medtune.runs import RunFolder, StageInputs, remove_checkpoints
from medtune.sharding import main_process_first

T = TypeVar("T")

# What each stage reads: recipe keys ("section.*" = a whole section, "*" = every key) and input files.
DATA_READS = ("task", "seed", "data.*")
DATA_FILES = ("data.train", "data.test", "data.general", "data.replay", "data.glossary")
EVAL_READS = ("model", "device", "seed", "eval.*")  # seed: few-shot examples and bootstrap resamples
TRAIN_READS = ("model", "device", "seed", "output_dir", "train.*")


def open_run(
    recipe: Recipe,
    resume: bool,
    overwrite: bool,
    force: bool = False,
    log=print,
    *,
    stages: Sequence[StageInputs] = (),
    run: RunFolder | None = None,
) -> RunFolder:
    """Create (or reopen) the run folder as ``runs.RunFolder.open`` allows; record the resolved recipe.

    ``stages`` (the recipe's, in run order) tell which finished stages a changed key affects; ``run``
    is the (unopened) folder object the stages were built on, when they were.
    """
    run = run or RunFolder(Path(recipe.run_dir), recipe.name)
    # Several processes: the main one checks, moves and writes first; the others then find its run.json
    # (a refusal raised there is raised again by each of them, as nothing was moved).
    with main_process_first():
        run.open(
            recipe.model_dump(mode="json"), resume=resume, overwrite=overwrite, force=force, stages=stages, log=log
        )
        if run.writes:
            run.sub("recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
    run.adopt_written()
    return run


class Memo(Generic[T]):
    """A value made at most once, on first use, and dropped on ``clear()`` (e.g. a loaded model)."""

    def __init__(self, make: Callable[[], T]):
        self._make = make
        self._value: list[T] = []

    def get(self) -> T:
        if not self._value:
            self._value.append(self._make())
        return self._value[0]

    def set(self, value: T) -> T:
        self._value[:] = [value]
        return value

    def clear(self) -> None:
        self._value.clear()


def data_stage(prepare: Callable[[], dict]) -> Stage:
    """The ``data`` stage: ``prepare`` loads, validates and splits the data into ``<run>/data`` and
    returns the split sizes."""
    return Stage("data", prepare, reads=DATA_READS, files=DATA_FILES, outputs=("data",))


def train_record(trained) -> dict:
    """The train stage's entry in run.json."""
    return {
        "output_dir": str(trained.path),
        **trained.result.to_dict(),
        "trainable_params": trained.trainable_params,
        "total_params": trained.total_params,
    }


def train_stage(
    run: RunFolder, recipe: Recipe, train: Callable[[], Any], before: Callable[[], None] = lambda: None
) -> Stage:
    """The ``train`` stage: ``train()`` fine-tunes and returns the trained model.

    Whether training continues from its checkpoint is the run folder's decision (``run.resume_training``);
    the checkpoints are deleted once the model is saved. ``before`` runs first (frees the base model).
    """

    def run_training() -> dict:
        from medtune.models.device import release_host_memory

        before()
        run.start_training()
        trained = train()
        release_host_memory()  # the fine-tuned model is scored next, in this process
        if run.writes:  # last, so that only the runner's record of this stage is left to write
            remove_checkpoints(trained.path)  # the saved model replaces them; they would only take space
        return train_record(trained)

    output_dir = str(Path(recipe.output_dir).resolve())
    return Stage("train", run_training, reads=TRAIN_READS, needs=("data",), outputs=(output_dir,), every_process=True)


def trained_model_dir(run: RunFolder) -> Path:
    """The model folder the finished train stage recorded."""
    return Path(run.done("train")["output_dir"])


def before_after_stages(
    run: RunFolder,
    recipe: Recipe,
    data: Stage,
    score: Callable[[str, Any], dict],
    train: Callable[[], Any],
    report: Callable[[Evaluations, Path], dict],
    same_base_reason: Callable[[Any], str | None] | None = None,
) -> list[Stage]:
    """The matched before/after loop every task shares, as stages.

    Stages: ``data``, ``eval_base`` (the base model few-shot), ``eval_base_zero_shot``, ``train``,
    ``eval_tuned`` (zero-shot), ``report``. The base model is loaded at most once, only when a base
    stage runs, and freed before training or scoring the fine-tune.

    Args:
        run: the run folder (the stages write into it; it need not be opened yet).
        recipe: the recipe (base model, ``device``, ``eval.dtype``, ``output_dir``).
        data: the task's data stage.
        score: ``score(stage, loaded_model)`` scores one model on the same items for every stage;
            the stage name says how to prompt (``eval_base``: few-shot, the others zero-shot).
        train: returns the trained model.
        report: ``report(evaluations, model_dir)`` writes report.html, report.md and summary.json
            and returns the summary.
        same_base_reason: for a task with few-shot prompts, ``same_base_reason(loaded_base)`` is None
            when the base's few-shot and zero-shot evaluations differ, or says why they are one
            evaluation (then it is scored once and ``eval_base_zero_shot`` records ``same_as``).
            None for a task without few-shot prompts (perplexity): no ``eval_base_zero_shot`` stage.
    Returns:
        The stages, in run order.
    """

    def load_for_eval(name: str) -> Any:
        from medtune.models.loading import load_model

        return load_model(
            name, dtype=recipe.eval.dtype, device=recipe.device, dtype_option="eval.dtype", device_option="device"
        )

    base = Memo(lambda: load_for_eval(recipe.model))

    def eval_base_zero_shot() -> dict:
        reason = same_base_reason(base.get())
        return {"same_as": "eval_base", "reason": reason} if reason else score("eval_base_zero_shot", base.get())

    def eval_tuned() -> dict:
        base.clear()  # one model in memory at a time
        return score("eval_tuned", load_for_eval(str(trained_model_dir(run))))

    def write_report() -> dict:
        summary = report(_evaluations(run, with_zero_shot=same_base_reason is not None), trained_model_dir(run))
        return {"report": summary["report_html"]}

    stages = [
        data,
        Stage(
            "eval_base",
            lambda: score("eval_base", base.get()),
            EVAL_READS,
            ("data",),
            outputs=("eval/eval_base",),
            every_process=True,  # the score functions share the items across processes
        ),
    ]
    if same_base_reason is not None:
        # A zero-shot evaluation scored as one with eval_base writes nothing of its own.
        zero = Stage("eval_base_zero_shot", eval_base_zero_shot, EVAL_READS, ("data", "eval_base"), every_process=True)
        stages.append(zero)
    stages += [
        train_stage(run, recipe, train, before=base.clear),
        Stage(
            "eval_tuned", eval_tuned, EVAL_READS, ("data", "train"), outputs=("eval/eval_tuned",), every_process=True
        ),
        Stage(
            "report",
            write_report,
            reads=("*",),
            needs=tuple(s.name for s in stages) + ("train", "eval_tuned"),
            outputs=("report.html", "report.md", "summary.json"),
        ),
    ]
    return stages


def _evaluations(run: RunFolder, with_zero_shot: bool) -> Evaluations:
    """The three evaluations as their stages recorded them."""
    first, tuned = run.done("eval_base"), run.done("eval_tuned")
    if not with_zero_shot:
        return Evaluations(few_shot=None, zero_shot=first, tuned=tuned, zero_shot_stage="eval_base")
    zero = run.done("eval_base_zero_shot")
    if "same_as" in zero:
        return Evaluations(
            few_shot=first, zero_shot=first, tuned=tuned, zero_shot_stage="eval_base", same_base_reason=zero["reason"]
        )
    return Evaluations(few_shot=first, zero_shot=zero, tuned=tuned)


def holdout_split(
    items: list, size: float, seed: int, key: str, validation: ValidationReport | None = None
) -> tuple[list, list]:
    """Cut a held-out share off ``items``; a dev split that rounds to nothing is simply skipped.

    ``validation`` (the report of the data the items came from) lets a 'too few items' error say
    how many rows were dropped and why.
    """
    k = eval_count(len(items), size)
    if key == "dev_size" and k == 0:
        return items, []
    if size > 0 and not 0 < k < len(items):
        raise MedtuneError(
            f"data.{key}={size} of {len(items)} items{left_after(validation)} leaves the "
            f"{'held-out' if k == 0 else 'training'} set empty; add rows or choose another size."
        )
    return split_items(items, size, seed)
