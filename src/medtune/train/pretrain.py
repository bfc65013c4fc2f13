"""Continued pre-training on raw medical text: documents packed into blocks, loss on every token.

The splits are read from their JSONL files into a memory-mapped token cache (``train/token_cache.py``)
and the loop's batches cut their blocks from it, so memory holds the model, not the corpus.
"""

from __future__ import annotations

from pathlib import Path

from medtune.recipes.schema import Recipe
from medtune.sharding import main_process_first
from medtune.train.packing import PackedBlocks, packing_efficiency
from medtune.train.setup import TrainedModel, fit, prepare_trainable_model, save_trained_model
from medtune.train.token_cache import cached_split_tokens


def train_pretrain(
    recipe: Recipe, train_file: Path, dev_file: Path, cache_dir: Path, resume: bool = False, log=print
) -> TrainedModel:
    """Continue pre-training ``recipe.model`` on the documents of ``train_file`` (the data stage's JSONL,
    a ``text`` field per line); blocks are ``train.max_length`` tokens; ``dev_file`` gives the dev loss.

    The token caches live in ``cache_dir`` (``train/`` and ``dev/``), built once by the main process
    and reused while the files and the tokenizer are unchanged.
    """
    trainable = prepare_trainable_model(recipe, log)
    tokenizer = trainable.loaded.tokenizer
    block = recipe.train.max_length
    with main_process_first():  # one process tokenises; the others then find the finished cache
        train_tokens = cached_split_tokens(tokenizer, train_file, cache_dir / "train", log)
        dev_tokens = cached_split_tokens(tokenizer, dev_file, cache_dir / "dev", log)
    train_blocks, dev_blocks = PackedBlocks(train_tokens, block), PackedBlocks(dev_tokens, block)
    efficiency = packing_efficiency(train_blocks, block)
    log(
        f"Packed {len(train_tokens.ends)} documents into {len(train_blocks)} blocks of {block} tokens "
        f"({efficiency:.1%} full)"
    )
    result = fit(recipe, trainable, train_blocks, dev_blocks, resume, log)
    metrics = {"train_blocks": len(train_blocks), "dev_blocks": len(dev_blocks), "block_size": block}
    return save_trained_model(recipe, trainable, result, {}, metrics)
