"""``medtune train`` with ``train.objective`` dpo or kto: stages data (preference pairs) -> train.

``data.train`` is a preference file (prompt/chosen/rejected, or messages-style chosen/rejected);
``model`` is where training starts and the reference model: an SFT output folder or a base model.
"""

from __future__ import annotations

from medtune.data.io import read_jsonl, write_jsonl
from medtune.data.preference import PreferencePair, load_preference_pairs, pairs_from_records
from medtune.data.sampling import sample_items
from medtune.errors import MedtuneError
from medtune.pipeline.common import Memo, data_stage, holdout_split, train_stage
from medtune.pipeline.stages import Stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

SPLITS = ("train", "dev")


def prepare_preference_data(recipe: Recipe, run: RunFolder, log=print) -> dict[str, list[PreferencePair]]:
    """Load, validate, sample and split the recipe's preference pairs; write the splits to ``<run>/data``.

    Raises:
        MedtuneError: ``data.train`` is not a preference file (naming ``train.objective``), and what
            :func:`medtune.data.preference.load_preference_pairs` raises.
    """
    d = recipe.data
    try:
        pool, report = load_preference_pairs(d.train, d.on_bad_rows, name="train", log=log)
    except MedtuneError as exc:
        raise MedtuneError(
            f"{exc} (train.objective={recipe.train.objective} trains on preference pairs in data.train; "
            "train.objective=sft trains on the task's own data.)"
        ) from None
    pool = sample_items(pool, d.sample, recipe.seed)
    train, dev = holdout_split(pool, d.dev_size, recipe.seed + 1, "dev_size", report)
    splits = {"train": train, "dev": dev}
    if run.writes:
        for name, pairs in splits.items():
            write_jsonl(run.sub("data", f"{name}.jsonl"), [p.to_record() for p in pairs])
        write_jsonl(run.sub("data", "validation.jsonl"), [report.to_dict()])
    return splits


def read_preference_data(run: RunFolder) -> dict[str, list[PreferencePair]]:
    """The splits the data stage wrote to ``<run>/data``."""
    return {name: pairs_from_records(read_jsonl(run.sub("data", f"{name}.jsonl"))) for name in SPLITS}


def preference_stages(recipe: Recipe, run: RunFolder, log=print) -> list[Stage]:
    """The stages of ``medtune train`` for train.objective dpo/kto (tasks translation, chat, qa).

    Raises:
        MedtuneError: task pretrain (raw text has no preference pairs).
    """
    if recipe.task == "pretrain":
        raise MedtuneError(
            f"train.objective={recipe.train.objective} trains on preference pairs, which task pretrain (raw text) "
            "has none of; use task translation, chat or qa, or train.objective=sft."
        )
    data = Memo(lambda: read_preference_data(run))

    def prepare() -> dict:
        return {name: len(pairs) for name, pairs in data.set(prepare_preference_data(recipe, run, log)).items()}

    def train():
        from medtune.train.preference import train_preference

        splits = data.get()
        return train_preference(
            recipe, splits["train"], splits["dev"], recipe.model, recipe.output_dir, run.resume_training, log
        )

    return [data_stage(prepare), train_stage(run, recipe, train)]


def refuse_run(recipe: Recipe) -> None:
    """``medtune run`` compares a base with its SFT fine-tune; with a preference objective it is refused
    before the run folder is touched, saying what to run instead.

    Raises:
        MedtuneError: always.
    """
    raise MedtuneError(
        f"medtune run compares the base model with its SFT fine-tune; train.objective={recipe.train.objective} "
        "is trained with 'medtune train RECIPE' on a preference file (then scored with 'medtune eval --task "
        "preference'), or end to end by the rlaif recipes (qa-rlaif, translate-rlaif)."
    )
