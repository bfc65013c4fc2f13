"""Batch RLHF from the feedback store: reviewers' judgments in, a trained translation model folder out.

``feedback.objective`` says how the judged items (:class:`~medtune.feedback.training_data.ItemFeedback`,
one per item, mean score over its reviewers) train the model, through medtune's preference-training
machinery (the same loop, reference model, LoRA/full handling and model folder as ``train_preference``):

* ``kto``: each machine translation unpaired, desirable when its mean score reaches ``feedback.threshold``;
* ``dpo``: the post-edit chosen over the machine translation, for items whose post-edit differs from it;
* ``reward-weighted``: the ``rlhf_update`` rule batched (:class:`~medtune.train.objectives.RewardWeightedObjective`),
  advantage = mean score - ``feedback.baseline`` (fixed: a batch has no running order), KL weight
  ``feedback.kl_coef``.

Every translation is encoded as medtune trains translation: the causal prompt with labels on the answer,
or Marian's source and target.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medtune.data.parallel import Pair
from medtune.errors import MedtuneError
from medtune.feedback.training_data import ItemFeedback
from medtune.recipes.schema import Recipe
from medtune.train.batching import encode_translation_pairs
from medtune.train.objectives import (
    DPOObjective,
    KTOExample,
    KTOObjective,
    PairExample,
    RewardWeightedObjective,
    ScoredExample,
    disable_dropout,
    reference_logps,
    with_reference_logps,
)
from medtune.train.preference import REFERENCE_CACHE, cached_reference_logps, lora_reference
from medtune.train.setup import TrainableModel, TrainedModel, fit, prepare_trainable_model, save_trained_model

FEEDBACK_OBJECTIVES = ("kto", "dpo", "reward-weighted")


def post_edit_pairs(items: Sequence[ItemFeedback]) -> list[ItemFeedback]:
    """The items whose post-edit differs from the machine translation (the ones DPO and the margin use)."""
    return [i for i in items if i.post_edit is not None and i.post_edit.strip() != i.translation.strip()]


def _check(recipe: Recipe, items: Sequence[ItemFeedback]) -> None:
    fb, cfg = recipe.feedback, recipe.train
    if recipe.task != "translation":
        raise MedtuneError(f"Training from feedback needs task: translation (the recipe says task: {recipe.task}).")
    if not items:
        raise MedtuneError(
            f"No judged items to train on in feedback project {fb.project or recipe.name!r}; judge some (medtune "
            "feedback serve / simulate / import) or lower feedback.heldout."
        )
    if fb.objective == "kto" and cfg.method == "full":
        raise MedtuneError(
            "feedback.objective=kto with train.method=full is not supported: KTO's reference point compares each "
            "translation with another source's, pairs formed per batch, so the reference model must run during "
            "training. Use train.method=lora, or feedback.objective=dpo or reward-weighted."
        )
    if fb.objective == "dpo" and not post_edit_pairs(items):
        raise MedtuneError(
            f"feedback.objective=dpo trains on post-edits that differ from the machine translation, and none of the "
            f"{len(items)} training items has one. Use feedback.objective=kto or reward-weighted (scores only), or "
            "collect post-edits."
        )


def _encode(trainable: TrainableModel, recipe: Recipe, sources: list[str], targets: list[str]) -> list:
    loaded, d = trainable.loaded, recipe.data
    pairs = [Pair(s, t) for s, t in zip(sources, targets, strict=True)]
    return encode_translation_pairs(
        loaded.tokenizer, pairs, loaded.is_seq2seq, recipe.train.max_length, d.src_lang, d.tgt_lang
    )


def feedback_training_items(
    recipe: Recipe, trainable: TrainableModel, items: Sequence[ItemFeedback], run_dir: Path, log=print
) -> tuple[list, object]:
    """(the loop's items, the objective) for ``feedback.objective``; full fine-tuning precomputes the
    reference log-probs the objective needs (DPO through its cache in ``run_dir``)."""
    fb, cfg = recipe.feedback, recipe.train
    full = cfg.method == "full"
    if fb.objective == "kto":
        examples = _encode(trainable, recipe, [i.source for i in items], [i.translation for i in items])
        desirable = [i.score >= fb.threshold for i in items]
        log(f"KTO: {sum(desirable)} desirable and {len(items) - sum(desirable)} undesirable translations "
            f"(mean score >= {fb.threshold}).")  # fmt: skip
        objective = KTOObjective(cfg.beta, cfg.kto_desirable_weight, cfg.kto_undesirable_weight)
        return [KTOExample(e, good) for e, good in zip(examples, desirable, strict=True)], objective
    if fb.objective == "dpo":
        edited = post_edit_pairs(items)
        chosen = _encode(trainable, recipe, [i.source for i in edited], [i.post_edit for i in edited])
        rejected = _encode(trainable, recipe, [i.source for i in edited], [i.translation for i in edited])
        pairs = [PairExample(c, r) for c, r in zip(chosen, rejected, strict=True)]
        log(f"DPO: {len(pairs)} post-edits preferred to their machine translation ({len(items) - len(pairs)} "
            "items without a differing post-edit left out).")  # fmt: skip
        if full:
            cache = run_dir / REFERENCE_CACHE
            pairs = with_reference_logps(pairs, cached_reference_logps(trainable, {"train": pairs}, cache, cfg.batch_size, log)["train"])  # fmt: skip
        return pairs, DPOObjective(cfg.beta, cfg.sft_weight)
    examples = _encode(trainable, recipe, [i.source for i in items], [i.translation for i in items])
    advantages = [i.score - fb.baseline for i in items]
    refs: list[float | None] = [None] * len(examples)
    if full and fb.kl_coef:
        log(f"Computing the starting model's log-probabilities of {len(examples)} translations (the KL reference).")
        loaded = trainable.loaded
        refs = reference_logps(
            trainable.model, examples, loaded.tokenizer.pad_token_id, loaded.is_seq2seq, cfg.batch_size,
            trainable.autocast_dtype,
        ).tolist()  # fmt: skip
    scored = [ScoredExample(e, a, r) for e, a, r in zip(examples, advantages, refs, strict=True)]
    return scored, RewardWeightedObjective(kl_coef=fb.kl_coef)


def train_from_feedback(
    recipe: Recipe,
    items: Sequence[ItemFeedback],
    start_model: str,
    output_dir: str,
    resume: bool = False,
    log=print,
) -> TrainedModel:
    """Train ``start_model`` on judged items with ``feedback.objective`` into ``output_dir``.

    Args:
        recipe: the recipe (``feedback``: objective, threshold, baseline, kl_coef; ``train``: method, LoRA,
            beta, schedule, lengths; ``data``: the prompt's languages).
        items: the judged items to train on (the held-out ones already removed).
        start_model: where training starts and the reference model (a base, or a medtune output folder; an
            SFT adapter is merged once into ``<output_dir>/../sft_merged`` so that a fresh adapter disabled
            is exactly it).
        output_dir: the folder for the trained model.
        resume: continue from the checkpoint in ``output_dir`` when there is one.
    Returns:
        The saved model; its ``medtune_model.json`` records the feedback objective and the reference model.
    Raises:
        MedtuneError: task not translation, no items, KTO with full fine-tuning, DPO without any differing
            post-edit, and what the training loop raises (e.g. micro-batches too small for KTO).
    """
    _check(recipe, items)
    fb, cfg = recipe.feedback, recipe.train
    recipe = recipe.model_copy(update={"output_dir": str(output_dir)})
    run_dir = Path(output_dir).parent
    reference = lora_reference(start_model, run_dir, log) if cfg.method == "lora" else start_model
    trainable = prepare_trainable_model(recipe, log, model_name=reference)
    disable_dropout(trainable.model)  # at the first step the policy is the reference, exactly
    train_items, objective = feedback_training_items(recipe, trainable, items, run_dir, log)
    result = fit(recipe, trainable, train_items, [], resume, log, objective=objective)
    info = {
        "objective": f"feedback-{fb.objective}",
        "beta": cfg.beta,
        "reference_model": _portable(reference),
        "reference": "adapter disabled" if cfg.method == "lora" else "precomputed log-probabilities",
        "start_model": _portable(start_model),
        "src_lang": recipe.data.src_lang,
        "tgt_lang": recipe.data.tgt_lang,
    }
    metrics = {
        "objective": f"feedback-{fb.objective}",
        "feedback_items": len(items),
        "training_items": len(train_items),
        "simulated_items": sum(i.simulated for i in items),
        **({"baseline": fb.baseline, "kl_coef": fb.kl_coef} if fb.objective == "reward-weighted" else {}),
        **({"threshold": fb.threshold} if fb.objective == "kto" else {}),
    }
    return save_trained_model(recipe, trainable, result, info, metrics)


def _portable(name: str) -> str:
    path = Path(name).expanduser()
    return str(path.resolve()) if path.is_dir() else name
