"""Continued pre-training on raw medical text: documents packed into blocks, loss on every token."""

from __future__ import annotations

from medtune.recipes.schema import Recipe
from medtune.train.packing import pack_documents, packing_efficiency
from medtune.train.setup import TrainedModel, fit, prepare_trainable_model, save_trained_model


def train_pretrain(
    recipe: Recipe, train_texts: list[str], dev_texts: list[str], resume: bool = False, log=print
) -> TrainedModel:
    """Continue pre-training ``recipe.model`` on documents; blocks are ``train.max_length`` tokens."""
    trainable = prepare_trainable_model(recipe, log)
    tokenizer = trainable.loaded.tokenizer
    block = recipe.train.max_length
    train_blocks = pack_documents(tokenizer, train_texts, block)
    dev_blocks = pack_documents(tokenizer, dev_texts, block)
    efficiency = packing_efficiency(train_blocks, block)
    log(
        f"Packed {len(train_texts)} documents into {len(train_blocks)} blocks of {block} tokens ({efficiency:.1%} full)"
    )
    result = fit(recipe, trainable, train_blocks, dev_blocks, resume, log)
    metrics = {"train_blocks": len(train_blocks), "dev_blocks": len(dev_blocks), "block_size": block}
    return save_trained_model(recipe, trainable, result, {}, metrics)
