"""Runs a recipe's stages in order, whatever its task. Knows nothing of tensors.

Each task module lists its stages (``*_stages(recipe, run, log)``: data -> eval_base
[-> eval_base_zero_shot] -> train -> eval_tuned -> report); this module opens the run folder
(``runs.py`` decides what may be resumed, re-run or refused) and hands the stages to the runner
(``pipeline/stages.py`` skips those whose inputs are unchanged). ``medtune train`` runs only the
``data`` and ``train`` stages of the same list (an rlaif recipe: data to dpo, ``pipeline/rlaif.py``; a
feedback_rlhf recipe: all its stages, ``pipeline/feedback_rlhf.py``).

Under ``accelerate launch``/``torchrun`` every process runs the same command: the result is the one
run of a single process (one ``run.json``, one report; see ``pipeline/stages.py``), and only the
main process prints messages.
"""

from __future__ import annotations

import json
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.pipeline.common import open_run, trained_model_dir
from medtune.pipeline.stages import Stage, check_from_stage, run_stages
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder
from medtune.sharding import quiet_unless_main


def recipe_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The stages of the recipe's task (or of its rlaif pipeline, or its preference objective), in run order."""
    if recipe.pipeline == "rlaif":
        from medtune.pipeline.rlaif import rlaif_stages

        return rlaif_stages(recipe, run, log)
    if recipe.pipeline == "feedback_rlhf":
        from medtune.pipeline.feedback_rlhf import feedback_rlhf_stages

        return feedback_rlhf_stages(recipe, run, log)
    if recipe.pipeline == "feedback_reward":
        from medtune.pipeline.feedback_reward import feedback_reward_stages

        return feedback_reward_stages(recipe, run, log)
    if recipe.pipeline == "full_training":
        from medtune.pipeline.full_training import full_training_stages

        return full_training_stages(recipe, run, log)
    if recipe.train.objective != "sft":
        from medtune.pipeline.preference import preference_stages

        return preference_stages(recipe, run, log)
    if recipe.task == "translation":
        from medtune.pipeline.translation import translation_stages

        return translation_stages(recipe, run, log)
    if recipe.task in ("chat", "qa"):
        from medtune.pipeline.dialogue import dialogue_stages

        return dialogue_stages(recipe, run, log)
    from medtune.pipeline.pretrain import pretrain_stages

    return pretrain_stages(recipe, run, log)


TRAIN_STAGES = ("data", "train")  # what medtune train runs of a recipe's stages


def _run(
    recipe: Recipe,
    command: str,
    only: tuple[str, ...] | None,
    resume: bool,
    overwrite: bool,
    force: bool,
    from_stage,
    log,
) -> RunFolder:
    main = quiet_unless_main()  # under a launcher: joins the process group (and picks this process's GPU) first
    if not main:
        log = _quiet  # the main process tells the user what happens
    run = RunFolder(Path(recipe.run_dir), recipe.name)
    stages = recipe_stages(recipe, run, log)
    runs = [s for s in stages if only is None or s.name in only]
    check_from_stage(from_stage, runs, f"medtune {command}")  # before the folder is touched
    if from_stage and overwrite:
        raise MedtuneError(
            "--from re-runs stages of the run in its folder and --overwrite replaces the whole run; pass one of them."
        )
    open_run(recipe, resume or from_stage is not None, overwrite, force, log, stages=stages, run=run)
    try:
        run_stages(run, recipe, stages, from_stage, log, only=only)
    except BaseException:
        if run.put_back_replaced_run():  # --overwrite failed before a stage finished: nothing is replaced
            log(f"The earlier run in {run.path} is kept as it was.")
        raise
    return run


def _quiet(message: str) -> None:
    """The log of a process other than the main one."""


def validate_recipe_data(
    recipe: Recipe, resume: bool = False, overwrite: bool = False, force: bool = False, log=print
) -> tuple[RunFolder, dict]:
    """``medtune data validate``: only the recipe's data stage (load, validate, deduplicate, split, write the
    validation report into ``<run_dir>/data``), so a corpus can be checked before a long job.

    Returns the run folder and the data stage's record (split sizes, fingerprint). A later ``medtune run`` or
    ``train --resume`` in the same folder keeps the stage when the data and recipe are unchanged.
    """
    run = _run(recipe, "data validate", ("data",), resume, overwrite, force, None, log)
    return run, run.done("data")


def train_recipe(
    recipe: Recipe,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    log=print,
    from_stage: str | None = None,
) -> Path:
    """``medtune train``: prepare the data and fine-tune; returns the trained model folder.

    ``from_stage`` (``--from``, which implies ``--resume``): re-run that stage and the ones after it.
    """
    if recipe.pipeline == "rlaif":
        from medtune.pipeline.rlaif import TRAIN_STAGES as RLAIF_TRAIN_STAGES
        from medtune.pipeline.rlaif import trained_model

        return trained_model(_run(recipe, "train", RLAIF_TRAIN_STAGES, resume, overwrite, force, from_stage, log))
    if recipe.pipeline == "feedback_rlhf":  # data, train and the held-out evaluation: all its stages
        return trained_model_dir(_run(recipe, "train", None, resume, overwrite, force, from_stage, log))
    if recipe.pipeline == "full_training":
        from medtune.pipeline.full_training import TRAIN_STAGES as FULL_TRAIN_STAGES
        from medtune.pipeline.full_training import trained_model as rlhf_model

        return rlhf_model(_run(recipe, "train", FULL_TRAIN_STAGES, resume, overwrite, force, from_stage, log))
    run = _run(recipe, "train", TRAIN_STAGES, resume, overwrite, force, from_stage, log)
    return trained_model_dir(run)


def run_recipe(
    recipe: Recipe,
    resume: bool = False,
    overwrite: bool = False,
    force: bool = False,
    log=print,
    from_stage: str | None = None,
) -> dict:
    """``medtune run``: score the base, fine-tune, score again, write the report; returns its summary
    (``summary.json``).

    ``from_stage`` (``--from``, which implies ``--resume``): re-run that stage and the ones after it.
    """
    if recipe.pipeline == "feedback_rlhf":
        raise MedtuneError(
            f"Recipe {recipe.name} (pipeline feedback_rlhf) trains from reviewers' judgments and scores the held-out "
            f"ones before and after in one command: 'medtune train {recipe.name} --set feedback.project=NAME'."
        )
    if recipe.pipeline == "feedback_reward":
        raise MedtuneError(
            f"Recipe {recipe.name} (pipeline feedback_reward) trains a reward model: run 'medtune train "
            f"{recipe.name} --set feedback.project=NAME', then score translations with 'medtune feedback score'."
        )
    if recipe.train.objective != "sft" and recipe.pipeline not in ("rlaif", "full_training"):
        from medtune.pipeline.preference import refuse_run

        refuse_run(recipe)
    run = _run(recipe, "run", None, resume, overwrite, force, from_stage, log)
    return json.loads(run.sub("summary.json").read_text(encoding="utf-8"))
