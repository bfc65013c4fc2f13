"""Runs a recipe's stages in order, whatever its task. Knows nothing of tensors.

Each task module has a ``train_*`` (data -> train) and a ``run_*`` (data -> eval_base
[-> eval_base_zero_shot] -> train -> eval_tuned -> report) function; this module opens the run folder (``runs.py`` decides what may be
skipped, re-run or refused) and picks the task's functions.
"""

from __future__ import annotations

from pathlib import Path

from medtune.pipeline.common import open_run
from medtune.recipes.schema import Recipe


def _task_functions(task: str, objective: str = "sft"):
    if objective != "sft":
        from medtune.pipeline.preference import refuse_run, train_preference_recipe

        return train_preference_recipe, refuse_run
    if task == "translation":
        from medtune.pipeline.translation import run_translation_recipe, train_translation_recipe

        return train_translation_recipe, run_translation_recipe
    if task in ("chat", "qa"):
        from medtune.pipeline.dialogue import run_dialogue_recipe, train_dialogue_recipe

        return train_dialogue_recipe, run_dialogue_recipe
    from medtune.pipeline.pretrain import run_pretrain_recipe, train_pretrain_recipe

    return train_pretrain_recipe, run_pretrain_recipe


def _run_stages(stages, recipe: Recipe, resume: bool, overwrite: bool, force: bool, log):
    run = open_run(recipe, resume, overwrite, force, log)
    try:
        return stages(recipe, run, run.resume_training, log)
    except BaseException:
        if run.put_back_replaced_run():  # --overwrite failed before a stage finished: nothing is replaced
            log(f"The earlier run in {run.path} is kept as it was.")
        raise


def train_recipe(recipe: Recipe, resume: bool = False, overwrite: bool = False, force: bool = False, log=print) -> Path:
    """``medtune train``: prepare the data and fine-tune; returns the trained model folder."""
    train, _ = _task_functions(recipe.task, recipe.train.objective)
    return _run_stages(train, recipe, resume, overwrite, force, log)


def run_recipe(recipe: Recipe, resume: bool = False, overwrite: bool = False, force: bool = False, log=print) -> dict:
    """``medtune run``: score the base, fine-tune, score again, write the report; returns its summary."""
    _, run = _task_functions(recipe.task, recipe.train.objective)
    return _run_stages(run, recipe, resume, overwrite, force, log)
