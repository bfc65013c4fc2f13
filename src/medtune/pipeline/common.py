"""What every task's pipeline shares: opening the run folder and guarding the model folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from medtune.data.sampling import eval_count, split_items
from medtune.data.validate import ValidationReport, left_after
from medtune.errors import MedtuneError
from medtune.recipes.loader import recipe_to_yaml
from medtune.recipes.schema import Recipe
from medtune.report.comparison import Evaluations
from medtune.runs import RunFolder, remove_checkpoints


def open_run(recipe: Recipe, resume: bool, overwrite: bool, force: bool = False, log=print) -> RunFolder:
    """Create (or reopen) the run folder as ``runs.RunFolder.open`` allows; record the resolved recipe."""
    run = RunFolder(Path(recipe.run_dir), recipe.name)
    run.open(recipe.model_dump(mode="json"), resume=resume, overwrite=overwrite, force=force, log=log)
    run.sub("recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
    return run


def train_record(trained) -> dict:
    """The train stage's entry in run.json."""
    return {
        "output_dir": str(trained.path),
        **trained.result.to_dict(),
        "trainable_params": trained.trainable_params,
        "total_params": trained.total_params,
    }


def train_stage(run: RunFolder, train: Callable[[], Any]) -> Path:
    """Run the training stage once; when ``run.json`` records it as done, return its model folder.

    Whether training continues from its checkpoint is the run folder's decision (``run.resume_training``).
    """
    if done := run.done("train"):
        return Path(done["output_dir"])
    from medtune.models.device import release_host_memory

    run.start_training()
    trained = train()
    run.mark_done("train", train_record(trained))
    remove_checkpoints(trained.path)  # the saved model replaces them; they would only take space
    release_host_memory()  # the fine-tuned model is scored next, in this process
    return trained.path


def before_after(
    run: RunFolder,
    base_model: str,
    score: Callable[[str, Any], dict],
    train: Callable[[], Any],
    report: Callable[[Evaluations, Path], dict],
    same_base_reason: Callable[[Any], str | None] | None = None,
    device: str = "auto",
    dtype: str = "auto",
) -> dict:
    """The matched before/after loop every task shares, each step a stage recorded in ``run.json``.

    Stages: ``eval_base`` (the base model few-shot), ``eval_base_zero_shot``, ``train``,
    ``eval_tuned`` (zero-shot), ``report``. A stage recorded as done is skipped (its model is not
    even loaded); the base model is loaded once for both base stages.

    Args:
        run: the run folder.
        base_model: the base model's name or path.
        score: ``score(stage, loaded_model)`` scores one model on the same items for every stage;
            the stage name says how to prompt (``eval_base``: few-shot, the others zero-shot).
        train: returns the trained model.
        report: ``report(evaluations, model_dir)`` writes the report and returns its summary.
        same_base_reason: for a task with few-shot prompts, ``same_base_reason(loaded_base)`` is None
            when the base's few-shot and zero-shot evaluations differ, or says why they are one
            evaluation (then it is scored once and ``eval_base_zero_shot`` records ``same_as``).
            None for a task without few-shot prompts (perplexity): no ``eval_base_zero_shot`` stage.
        device, dtype: where and in which precision every model is scored (the recipe's ``device``
            and ``eval.dtype``).
    Returns:
        The report's summary.
    """
    from medtune.models.loading import load_model

    def load_for_eval(name: str) -> Any:
        return load_model(name, dtype=dtype, device=device, dtype_option="eval.dtype", device_option="device")

    loaded_base: list = []  # loaded at most once, only when a base stage still has to run

    def base() -> Any:
        if not loaded_base:
            loaded_base.append(load_for_eval(base_model))
        return loaded_base[0]

    def evaluate(stage: str, loaded: Callable[[], Any]) -> dict:
        if done := run.done(stage):
            return done
        result = score(stage, loaded())
        run.mark_done(stage, result)
        return result

    first = evaluate("eval_base", base)
    if same_base_reason is None:
        evaluations = dict(few_shot=None, zero_shot=first, zero_shot_stage="eval_base")
    else:
        zero = run.done("eval_base_zero_shot")
        if zero is None:
            reason = same_base_reason(base())
            zero = {"same_as": "eval_base", "reason": reason} if reason else score("eval_base_zero_shot", base())
            run.mark_done("eval_base_zero_shot", zero)
        if "same_as" in zero:
            evaluations = dict(
                few_shot=first, zero_shot=first, zero_shot_stage="eval_base", same_base_reason=zero["reason"]
            )
        else:
            evaluations = dict(few_shot=first, zero_shot=zero)
    loaded_base.clear()  # free the base model before training
    model_dir = train_stage(run, train)
    tuned = evaluate("eval_tuned", lambda: load_for_eval(str(model_dir)))
    summary = report(Evaluations(**evaluations, tuned=tuned), model_dir)
    run.mark_done("report", {"report": summary["report_html"]})
    return summary


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
