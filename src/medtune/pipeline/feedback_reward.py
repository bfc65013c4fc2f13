"""The feedback_reward pipeline (recipe feedback-reward): data -> train, both run by ``medtune train``.

* data: the feedback_rlhf pipeline's own data stage (:func:`medtune.pipeline.feedback_rlhf.prepare_feedback_data`):
  every judgment of ``feedback.project`` (default: the recipe name) in ``feedback.db``, aggregated per
  item (the mean score of its reviewers), ``feedback.heldout`` of the items held out (by item id and
  ``seed``), written to ``<run>/feedback/``. The store is read when the stage runs: after more
  judging, ``--from data`` (or a new run) reads it again.
* train: the reward model (:func:`medtune.feedback.reward.train_reward_model`) into ``output_dir``,
  with its held-out Spearman and pairwise accuracy in ``<output_dir>/metrics.json``.
"""

from __future__ import annotations

from pathlib import Path

from medtune.errors import MedtuneError
from medtune.pipeline.feedback_rlhf import DATA_READS, FEEDBACK_FOLDER, prepare_feedback_data, read_feedback_splits
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

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


def feedback_reward_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The two stages of the feedback_reward pipeline, in order."""
    if recipe.task != "translation":
        raise MedtuneError(
            f"pipeline feedback_reward trains a reward model for translations; set task: translation (got {recipe.task})."
        )

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
        Stage("data", lambda: prepare_feedback_data(recipe, run, log), DATA_READS, outputs=(FEEDBACK_FOLDER,)),
        Stage(
            "train",
            train,
            reads=TRAIN_READS,
            needs=("data",),
            outputs=(str(Path(recipe.output_dir).resolve()),),
            every_process=True,  # data-parallel under a launcher; the main process writes the model
        ),
    ]
