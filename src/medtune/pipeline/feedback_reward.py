"""The feedback_reward pipeline (recipe feedback-reward): data -> train, both run by ``medtune train``.

* data: every judgment of ``feedback.project`` (default: the recipe name) in ``feedback.db``,
  aggregated per item (:func:`medtune.feedback.training_data.item_feedback`: the mean score of its
  reviewers), ``feedback.heldout`` of the items held out (by item id and ``seed``); written to
  ``<run>/feedback/train.jsonl`` and ``heldout.jsonl``. The store is read when the stage runs: after
  more judging, ``--from data`` (or a new run) reads it again.
* train: the reward model (:func:`medtune.feedback.reward.train_reward_model`) into ``output_dir``,
  with its held-out Spearman and pairwise accuracy in ``<output_dir>/metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

from medtune.data.io import read_jsonl, write_jsonl
from medtune.errors import MedtuneError
from medtune.feedback.training_data import ItemFeedback, item_feedback, split_heldout
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

FEEDBACK_FOLDER = "feedback"
SPLITS = ("train", "heldout")
TRAIN_READS = (
    "model",
    "device",
    "seed",
    "output_dir",
    "train.*",
    "feedback.pairwise_weight",
    "data.src_lang",
    "data.tgt_lang",
)
# what the train stage's record in run.json keeps of the model's metrics.json
RECORDED = (
    "steps",
    "train_loss",
    "dev_loss",
    "train_items",
    "heldout_items",
    "spearman",
    "spearman_ci_low",
    "spearman_ci_high",
    "pairwise_accuracy",
    "pairs",
    "chrf_spearman",
    "train_seconds",
    "trainable_params",
)


def feedback_project(recipe: Recipe) -> str:
    """The feedback project a recipe reads: ``feedback.project``, else the recipe's name."""
    return recipe.feedback.project or recipe.name


def existing_store_url(db: str | None, option: str) -> str:
    """The store URL for ``db``, refusing a SQLite file that does not exist (reading should not create one).

    Raises:
        MedtuneError: ``db`` names a SQLite file that is not there (naming ``option`` and the path).
    """
    from sqlalchemy.engine import make_url

    from medtune.feedback.store import database_url

    url = database_url(db)
    parsed = make_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(file).is_file():
        raise MedtuneError(
            f"{option}={db or parsed.database}: no feedback store at {parsed.database}. Point {option} at the "
            "database that holds the judgments (a SQLite file or a SQLAlchemy URL)."
        )
    return url


def read_judged_items(recipe: Recipe) -> tuple[list[ItemFeedback], int]:
    """(one aggregated record per judged item of the recipe's project, how many judgments there are).

    Raises:
        MedtuneError: no store at a SQLite ``feedback.db``; the project does not exist in the store, or has
            no judgment (naming both).
    """
    from medtune.feedback.store import FeedbackStore

    url, project = existing_store_url(recipe.feedback.db, "feedback.db"), feedback_project(recipe)
    with FeedbackStore(url) as store:
        projects = store.project_names()
        judgments = store.judgments(project) if project in projects else []
    if not judgments:
        where = "has no judgments yet" if project in projects else f"does not exist (projects: {projects or 'none'})"
        raise MedtuneError(
            f"feedback.project={project!r} in feedback.db={url} {where}; the reward model trains on judged "
            "items. Queue and judge translations first (medtune feedback queue, then serve, simulate or import), "
            "or point feedback.db / feedback.project at the store that holds them."
        )
    return item_feedback(judgments), len(judgments)


def read_feedback_splits(run: RunFolder) -> dict[str, list[ItemFeedback]]:
    """The splits the data stage wrote to ``<run>/feedback``."""
    return {
        name: [ItemFeedback.from_record(r) for r in read_jsonl(run.sub(FEEDBACK_FOLDER, f"{name}.jsonl"))]
        for name in SPLITS
    }


def feedback_reward_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The two stages of the feedback_reward pipeline, in order."""
    if recipe.task != "translation":
        raise MedtuneError(
            f"pipeline feedback_reward trains a reward model for translations; set task: translation (got {recipe.task})."
        )

    def prepare() -> dict:
        items, judgments = read_judged_items(recipe)
        train, heldout = split_heldout(items, recipe.feedback.heldout, recipe.seed)
        if run.writes:
            for name, split in (("train", train), ("heldout", heldout)):
                write_jsonl(run.sub(FEEDBACK_FOLDER, f"{name}.jsonl"), [item.to_record() for item in split])
        simulated = sum(item.simulated for item in items)
        log(
            f"feedback: {judgments} judgments of {len(items)} items in project {feedback_project(recipe)!r} "
            f"({simulated} items judged by a simulated reviewer); {len(train)} to train, {len(heldout)} held out."
        )
        return {
            "project": feedback_project(recipe),
            "judgments": judgments,
            "items": len(items),
            "simulated_items": simulated,
            "train": len(train),
            "heldout": len(heldout),
        }

    def train() -> dict:
        from medtune.feedback.reward import train_reward_model

        splits = read_feedback_splits(run)
        run.start_training()
        output_dir = recipe.output_dir
        metrics = train_reward_model(
            recipe, splits["train"], splits["heldout"], output_dir, log, resume=run.resume_training
        )
        return {"output_dir": str(Path(output_dir)), **{key: metrics.get(key) for key in RECORDED}}

    return [
        Stage(
            "data",
            prepare,
            reads=("seed", "feedback.db", "feedback.project", "feedback.heldout"),
            outputs=(FEEDBACK_FOLDER,),
        ),
        Stage(
            "train",
            train,
            reads=TRAIN_READS,
            needs=("data",),
            outputs=(str(Path(recipe.output_dir).resolve()),),
        ),
    ]
