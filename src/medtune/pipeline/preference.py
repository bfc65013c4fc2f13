"""``medtune train`` with ``train.objective`` dpo or kto: data (preference pairs) -> train.

``data.train`` is a preference file (prompt/chosen/rejected, or messages-style chosen/rejected);
``model`` is where training starts and the reference model: an SFT output folder or a base model.
"""

from __future__ import annotations

from pathlib import Path

from medtune.data.io import read_jsonl, write_jsonl
from medtune.data.preference import PreferencePair, load_preference_pairs, pairs_from_records
from medtune.data.sampling import sample_items
from medtune.errors import MedtuneError
from medtune.pipeline.common import holdout_split, train_stage
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder

SPLITS = ("train", "dev")


def prepare_preference_data(recipe: Recipe, run: RunFolder, log=print) -> dict[str, list[PreferencePair]]:
    """Load, validate, sample and split the recipe's preference pairs; write the splits to ``<run>/data``.

    Raises:
        MedtuneError: ``data.train`` is not a preference file (naming ``train.objective``), and what
            :func:`medtune.data.preference.load_preference_pairs` raises.
    """
    if run.done("data"):
        return {name: pairs_from_records(read_jsonl(run.sub("data", f"{name}.jsonl"))) for name in SPLITS}
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
    for name, pairs in splits.items():
        write_jsonl(run.sub("data", f"{name}.jsonl"), [p.to_record() for p in pairs])
    write_jsonl(run.sub("data", "validation.jsonl"), [report.to_dict()])
    run.mark_done("data", {name: len(pairs) for name, pairs in splits.items()})
    return splits


def train_preference_recipe(recipe: Recipe, run: RunFolder, resume: bool = False, log=print) -> Path:
    """``medtune train`` for train.objective dpo/kto (tasks translation, chat, qa): returns the model folder."""
    from medtune.train.preference import train_preference

    if recipe.task == "pretrain":
        raise MedtuneError(
            f"train.objective={recipe.train.objective} trains on preference pairs, which task pretrain (raw text) "
            "has none of; use task translation, chat or qa, or train.objective=sft."
        )
    data = prepare_preference_data(recipe, run, log)
    return train_stage(
        run,
        lambda: train_preference(recipe, data["train"], data["dev"], recipe.model, recipe.output_dir, resume, log),
    )


def refuse_run(recipe: Recipe, run: RunFolder, resume: bool = False, log=print) -> dict:
    """``medtune run`` compares a base with its SFT fine-tune; with a preference objective it is refused
    (no stage has run: the run folder holds no finished work), saying what to run instead.

    Raises:
        MedtuneError: always.
    """
    raise MedtuneError(
        f"medtune run compares the base model with its SFT fine-tune; train.objective={recipe.train.objective} "
        "is trained with 'medtune train RECIPE' on a preference file (then scored with 'medtune eval --task "
        "preference'), or end to end by the rlaif recipes (qa-rlaif, translate-rlaif)."
    )
