"""The translation training stage: pairs in, a trained model folder out."""

from __future__ import annotations

from medtune.data.parallel import Pair
from medtune.recipes.schema import Recipe
from medtune.train.batching import encode_translation_pairs
from medtune.train.setup import TrainedModel, fit, prepare_trainable_model, save_trained_model


def train_translation(
    recipe: Recipe, train_pairs: list[Pair], dev_pairs: list[Pair], resume: bool = False, log=print
) -> TrainedModel:
    """Fine-tune ``recipe.model`` on translation pairs and save it to ``recipe.output_dir``.

    Causal LMs learn ``prompt -> target`` with the loss on target tokens only; seq2seq models
    learn (source, target) directly. The folder receives the adapter (or full weights), the
    tokenizer, ``recipe.yaml``, ``metrics.json`` and ``medtune_model.json``.
    """
    trainable = prepare_trainable_model(recipe, log)
    loaded = trainable.loaded
    encode = dict(
        seq2seq=loaded.is_seq2seq,
        max_length=recipe.train.max_length,
        src_lang=recipe.data.src_lang,
        tgt_lang=recipe.data.tgt_lang,
    )
    train_ex = encode_translation_pairs(loaded.tokenizer, train_pairs, **encode)
    dev_ex = encode_translation_pairs(loaded.tokenizer, dev_pairs, **encode)
    result = fit(recipe, trainable, train_ex, dev_ex, resume, log)
    info = {"src_lang": recipe.data.src_lang, "tgt_lang": recipe.data.tgt_lang}
    metrics = {"train_examples": len(train_ex), "dev_examples": len(dev_ex)}
    return save_trained_model(recipe, trainable, result, info, metrics)
