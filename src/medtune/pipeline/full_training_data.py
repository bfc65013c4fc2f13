"""The full-training pipeline's data stage: the translate splits, and a feedback set kept apart from them.

The pairs are validated and split train/dev/test as translate-rlaif splits them
(:func:`medtune.pipeline.rlaif_data.prepare_rlaif_data`: by document with ``data.split: document``).
Then ``feedback.items`` sentences are taken out of the training split, whole documents at a time
(seeded), as the feedback set: the SFT model never trains on them, the test split never holds them,
and since simulated post-edits are the references, RLHF never sees a test sentence's reference.
The sentences of the last document taken beyond ``feedback.items`` are left out of every set
(``feedback_unused``) so that no document straddles training and feedback.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path

from medtune.data.io import read_jsonl, write_jsonl
from medtune.data.parallel import Pair
from medtune.errors import MedtuneError
from medtune.eval.translation import translation_ids
from medtune.pipeline.rlaif_data import RlaifData, prepare_rlaif_data
from medtune.recipes.schema import Recipe

FEEDBACK_FILE = "feedback.jsonl"


def _documents(pairs: list[Pair], by: str) -> list[list[Pair]]:
    """Pairs grouped as the splits group them: by document, or one group per pair (``random``)."""
    if by == "random":
        return [[p] for p in pairs]
    grouped: OrderedDict[str, list[Pair]] = OrderedDict()
    for i, pair in enumerate(pairs):
        grouped.setdefault(pair.doc if pair.doc is not None else f"#row{i}", []).append(pair)
    return list(grouped.values())


def carve_feedback_set(train: list[Pair], items: int, seed: int, by: str) -> tuple[list[Pair], list[Pair], int]:
    """Take ``items`` pairs out of ``train``, whole documents at a time: ``(train left, feedback set, unused)``.

    ``unused`` counts the sentences of the last document taken beyond ``items``: they are in neither set.

    Raises:
        MedtuneError: the training split is too small to give ``items`` sentences and still train.
    """
    documents = _documents(train, by)
    random.Random(seed).shuffle(documents)
    taken: list[Pair] = []
    left: list[Pair] = []
    for document in documents:
        if len(taken) < items:
            taken.extend(document)
        else:
            left.extend(document)
    if len(taken) < items or not left:
        raise MedtuneError(
            f"feedback.items={items}: the training split holds {len(train)} pairs, too few to set {items} apart "
            "as the feedback set and still train on the rest; lower feedback.items or add pairs (data.train)."
        )
    return left, taken[:items], len(taken) - items


def prepare_full_training_data(recipe: Recipe, folder: Path, log=print) -> dict:
    """Split the recipe's pairs into ``folder`` (train/dev/test as translate-rlaif) and the feedback set.

    Writes ``folder/feedback.jsonl``: one row per feedback sentence, ``{id, en, es}`` with the
    recipe's source/target column names as keys (what ``queue_translations`` reads) and the pair's
    stable id (:func:`medtune.eval.translation.translation_ids`).

    Returns:
        The stage record: the size of every split, ``feedback`` and ``feedback_unused``.
    Raises:
        MedtuneError: unreadable data, too few pairs to split, or to set ``feedback.items`` apart.
    """
    if recipe.task != "translation":
        raise MedtuneError(
            f"pipeline full_training runs task translation, not task {recipe.task!r}; set task: translation."
        )
    prepare_rlaif_data(recipe, folder, log)
    data = RlaifData.read(folder)
    train, feedback, unused = carve_feedback_set(
        data.pairs("train"),  # already holds no test source (prepare_rlaif_data)
        recipe.feedback.items,
        recipe.seed + 2,  # the splits above use seed and seed + 1
        recipe.data.split,
    )
    split = RlaifData(train=[p.to_record() for p in train], dev=data.dev, test=data.test)
    split.write(folder)  # the training prompts of translate-rlaif have no use here: not written
    d = recipe.data
    write_jsonl(
        folder / FEEDBACK_FILE,
        [
            {"id": i, d.src_col: p.src, d.tgt_col: p.tgt}
            for i, p in zip(translation_ids(feedback), feedback, strict=True)
        ],
    )
    log(
        f"feedback set: {len(feedback)} sentences kept apart from the {len(train)} training and {len(data.test)} test pairs."
    )
    return {**split.counts(), "feedback": len(feedback), "feedback_unused": unused}


def feedback_rows(folder: Path) -> list[dict]:
    """The feedback set the data stage wrote (``{id, <src_col>, <tgt_col>}`` rows)."""
    return read_jsonl(folder / FEEDBACK_FILE)
