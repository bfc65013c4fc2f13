"""What every task's pipeline shares: opening the run folder and guarding the model folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from medtune.data.sampling import eval_count, split_items
from medtune.errors import MedtuneError
from medtune.recipes.loader import recipe_to_yaml
from medtune.recipes.schema import Recipe
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
    run.start_training()
    trained = train()
    run.mark_done("train", train_record(trained))
    remove_checkpoints(trained.path)  # the saved model replaces them; they would only take space
    return trained.path


def before_after(
    run: RunFolder,
    base_model: str,
    score: Callable[[str, Any], dict],
    train: Callable[[], Any],
    report: Callable[[dict, dict, Path], dict],
) -> dict:
    """The before/after loop every task shares: eval_base -> train -> eval_tuned -> report.

    ``score(stage, loaded_model)`` scores one model; a stage that ``run.json`` records as done is
    skipped (its model is not even loaded). ``train()`` returns a trained model,
    ``report(base, tuned, model_dir)`` returns the summary.
    """
    from medtune.models.loading import load_model

    def evaluate(stage: str, model_name: str) -> dict:
        if done := run.done(stage):
            return done
        result = score(stage, load_model(model_name))
        run.mark_done(stage, result)
        return result

    base = evaluate("eval_base", base_model)
    model_dir = train_stage(run, train)
    tuned = evaluate("eval_tuned", str(model_dir))
    summary = report(base, tuned, model_dir)
    run.mark_done("report", {"report": summary["report_html"]})
    return summary


def holdout_split(items: list, size: float, seed: int, key: str) -> tuple[list, list]:
    """Cut a held-out share off ``items``; a dev split that rounds to nothing is simply skipped."""
    k = eval_count(len(items), size)
    if key == "dev_size" and k == 0:
        return items, []
    if size > 0 and not 0 < k < len(items):
        raise MedtuneError(
            f"data.{key}={size} of {len(items)} items leaves the {'held-out' if k == 0 else 'training'} set "
            "empty; choose another size."
        )
    return split_items(items, size, seed)
