"""The feedback_rlhf pipeline (recipe feedback-rlhf): data -> train -> eval, all run by ``medtune train``.

* data: every judgment of ``feedback.project`` (default: the recipe name) in ``feedback.db``, aggregated
  per item (:func:`medtune.feedback.training_data.item_feedback`: the mean score of its reviewers),
  ``feedback.heldout`` of the items held out (by item id and ``seed``); written to
  ``<run>/feedback/train.jsonl`` and ``heldout.jsonl``, with the judgments' statistics (counts, score
  histogram, agreement, post-editing effort) in ``<run>/feedback/stats.json``. The store is read when the
  stage runs: after more judging, ``--from data`` (or a new run) reads it again.
* train: :func:`medtune.feedback.train.train_from_feedback` with ``feedback.objective`` from ``model``
  into ``output_dir``.
* eval: on the held-out items with a differing post-edit, the post-edit preference margin of ``model``
  (before) and of the trained model (after), with bootstrap intervals and the paired change
  (:mod:`medtune.feedback.heldout`), in ``<run>/summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

from medtune.data.io import read_jsonl, write_jsonl
from medtune.errors import MedtuneError
from medtune.feedback.training_data import ItemFeedback, item_feedback, split_heldout
from medtune.pipeline.common import EVAL_READS, train_stage, trained_model_dir
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

FEEDBACK_FOLDER = "feedback"
SPLITS = ("train", "heldout")
EVAL_FOLDER = Path("eval", "post_edit_preference")
DATA_READS = ("seed", "feedback.db", "feedback.project", "feedback.heldout")
TRAIN_READS = ("data.src_lang", "data.tgt_lang", "feedback.objective", "feedback.threshold", "feedback.kl_coef",
               "feedback.baseline")  # fmt: skip


def feedback_project(recipe: Recipe) -> str:
    """The feedback project a recipe reads: ``feedback.project``, else the recipe's name."""
    return recipe.feedback.project or recipe.name


def read_judgments(recipe: Recipe) -> list:
    """Every judgment of the recipe's project, in judgment-id order.

    Raises:
        MedtuneError: no such SQLite file, no such project, or a project without judgments (naming the keys).
    """
    from medtune.feedback.store import FeedbackStore, database_url

    url, project = database_url(recipe.feedback.db), feedback_project(recipe)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise MedtuneError(
            f"feedback.db={recipe.feedback.db or 'feedback.db'}: no feedback store at {url.removeprefix('sqlite:///')}. "
            "Queue and judge translations first (medtune feedback queue, then serve, simulate or import), or set "
            "feedback.db to the store that holds them (--set feedback.db=PATH_OR_URL)."
        )
    with FeedbackStore(url) as store:
        projects = store.project_names()
        judgments = store.judgments(project) if project in projects else []
    if not judgments:
        where = "has no judgments yet" if project in projects else f"does not exist (projects: {projects or 'none'})"
        raise MedtuneError(
            f"feedback.project={project!r} in feedback.db={url} {where}; RLHF trains on judged items. Judge the "
            "queued translations first (medtune feedback serve, simulate or import), or set feedback.project / "
            "feedback.db to where they are."
        )
    return judgments


def read_feedback_splits(run: RunFolder) -> dict[str, list[ItemFeedback]]:
    """The splits the data stage wrote to ``<run>/feedback``."""
    return {
        name: [ItemFeedback.from_record(r) for r in read_jsonl(run.sub(FEEDBACK_FOLDER, f"{name}.jsonl"))]
        for name in SPLITS
    }


def prepare_feedback_data(recipe: Recipe, run: RunFolder, log=print) -> dict:
    """The data stage: read, aggregate, split and summarise the judgments; returns its run.json record."""
    from medtune.feedback.stats import feedback_stats

    judgments = read_judgments(recipe)
    items = item_feedback(judgments)
    train, heldout = split_heldout(items, recipe.feedback.heldout, recipe.seed)
    stats = feedback_stats(judgments, seed=recipe.seed)
    if run.writes:
        for name, split in (("train", train), ("heldout", heldout)):
            write_jsonl(run.sub(FEEDBACK_FOLDER, f"{name}.jsonl"), [item.to_record() for item in split])
        run.sub(FEEDBACK_FOLDER, "stats.json").write_text(json.dumps(stats, indent=2), encoding="utf-8")
    simulated = sum(item.simulated for item in items)
    log(
        f"feedback: {len(judgments)} judgments of {len(items)} items in project {feedback_project(recipe)!r} "
        f"({simulated} items judged by a simulated reviewer); {len(train)} to train, {len(heldout)} held out."
    )
    return {
        "project": feedback_project(recipe),
        "judgments": len(judgments),
        "items": len(items),
        "simulated_items": simulated,
        "train": len(train),
        "heldout": len(heldout),
    }


def feedback_rlhf_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The three stages of the feedback_rlhf pipeline, in order.

    Raises:
        MedtuneError: a task other than translation.
    """
    if recipe.task != "translation":
        raise MedtuneError(
            f"pipeline feedback_rlhf trains translation models from reviewers' judgments; set task: translation "
            f"(got {recipe.task})."
        )

    def train():
        from medtune.feedback.train import train_from_feedback

        items = read_feedback_splits(run)["train"]
        return train_from_feedback(recipe, items, recipe.model, recipe.output_dir, run.resume_training, log)

    def evaluate() -> dict:
        # under several processes each scores its share of the pairs; the main one writes the files
        from medtune.feedback.heldout import evaluate_post_edit_margin
        from medtune.models.loading import load_model

        def loader(name: str):
            return lambda: load_model(
                name, dtype=recipe.eval.dtype, device=recipe.device, log=log, dtype_option="eval.dtype",
                device_option="device",
            )  # fmt: skip

        model_dir = trained_model_dir(run)
        d = recipe.data
        result = evaluate_post_edit_margin(
            {"before": loader(recipe.model), "after": loader(str(model_dir))},
            read_feedback_splits(run)["heldout"],
            run.sub(EVAL_FOLDER),
            seed=recipe.seed,
            batch_size=recipe.eval.batch_size,
            max_length=recipe.eval.max_length,
            src_lang=d.src_lang,
            tgt_lang=d.tgt_lang,
            log=log,
        )
        summary = {
            "pipeline": "feedback_rlhf",
            "recipe": recipe.name,
            "objective": recipe.feedback.objective,
            "feedback": run.done("data"),
            "training": {
                k: v for k, v in (run.done("train") or {}).items() if k in ("steps", "train_loss", "train_seconds")
            },
            "post_edit_preference": result,
            "output_dir": str(model_dir),
        }
        if run.writes:
            run.sub("summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
        return {"post_edit_preference": result}

    train_step = train_stage(run, recipe, train)
    return [
        Stage("data", lambda: prepare_feedback_data(recipe, run, log), reads=DATA_READS, outputs=(FEEDBACK_FOLDER,)),
        Stage(
            train_step.name,
            train_step.run,
            train_step.reads + TRAIN_READS,
            train_step.needs,
            (),
            train_step.outputs,
            every_process=True,  # data-parallel under a launcher; the main process saves the model
        ),
        Stage(
            "eval",
            evaluate,
            EVAL_READS + ("data.*",),
            ("data", "train"),
            (),
            (str(EVAL_FOLDER), "summary.json"),
            every_process=True,
        ),
    ]
