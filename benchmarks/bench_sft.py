"""Benchmark chat-template SFT and continued pre-training on the embedded model (CPU).

Prints, for the bundled chat-sft and dapt recipes' training setups:
  * trained tokens/s (tokens that carry the loss: assistant turns for SFT, every token for packing)
    and all processed tokens/s, over a few optimizer steps;
  * padding waste: the share of processed positions that are padding, for the whole epoch plan
    with medtune's length grouping, and for comparison with plain shuffled batches;
  * peak memory (max RSS).

Usage: python benchmarks/bench_sft.py [--steps 6] [--part sft|pretrain|both]
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def padding_waste(lengths_per_batch: list[list[int]]) -> float:
    """Padding share when every batch is padded to its longest sequence."""
    real = sum(sum(b) for b in lengths_per_batch)
    padded = sum(max(b) * len(b) for b in lengths_per_batch)
    return 1 - real / padded


def epoch_waste(examples, batch_size: int, seed: int) -> tuple[float, float]:
    """(medtune's length-grouped plan, plain shuffled batches) padding waste over one epoch."""
    from medtune.train.batching import plan_batches

    lengths = [len(e.input_ids) for e in examples]
    grouped = [[lengths[i] for i in batch] for batch in plan_batches(examples, batch_size, seed, 0)]
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    plain = [[lengths[i] for i in order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
    return padding_waste(grouped), padding_waste(plain)


def run_part(recipe_name: str, steps: int) -> dict:
    from medtune.data.chat import load_conversations
    from medtune.data.text import load_documents
    from medtune.recipes.loader import load_recipe
    from medtune.train.loop import train_loop
    from medtune.train.packing import pack_documents
    from medtune.train.setup import loop_config, prepare_trainable_model
    from medtune.train.sft import encode_conversations

    recipe = load_recipe(
        recipe_name, [f"train.max_steps={steps}", "train.eval_every=1000000", "train.save_every=1000000"]
    )
    trainable = prepare_trainable_model(recipe, log=lambda *_: None)
    tok = trainable.loaded.tokenizer
    quiet = lambda *_: None  # noqa: E731
    if recipe.task == "pretrain":
        docs, _ = load_documents(recipe.data.train, recipe.data.text_col, log=quiet)
        examples = pack_documents(tok, [d.text for d in docs], recipe.train.max_length)
    else:
        conversations, _ = load_conversations(recipe.data.train, log=quiet)
        examples, _ = encode_conversations(tok, [c.messages for c in conversations], recipe.train.max_length)
    grouped, plain = epoch_waste(examples, recipe.train.batch_size, recipe.seed)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train_loop(
            trainable.model, examples, [], loop_config(recipe), tok.pad_token_id, False, Path(tmp), log=quiet
        )
        wall = time.perf_counter() - started
    return {
        "recipe": recipe_name,
        "steps": result.steps,
        "batch_size": recipe.train.batch_size,
        "trained_tokens_per_s": result.target_tokens / wall,
        "processed_tokens_per_s": result.input_tokens / wall,
        "seconds": wall,
        "padding_waste_run": result.padding_waste,
        "padding_waste_epoch_grouped": grouped,
        "padding_waste_epoch_plain": plain,
        "peak_mb": _peak_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps to time for each part")
    parser.add_argument("--part", choices=["sft", "pretrain", "both"], default="both", help="which setup to time")
    args = parser.parse_args()
    parts = {"sft": ["chat-sft"], "pretrain": ["dapt"], "both": ["chat-sft", "dapt"]}[args.part]
    for name in parts:
        r = run_part(name, args.steps)
        print(
            f"{name:9s}: {r['trained_tokens_per_s']:.1f} trained tokens/s, {r['processed_tokens_per_s']:.1f} processed "
            f"tokens/s ({r['steps']} steps of {r['batch_size']} in {r['seconds']:.1f} s), peak {r['peak_mb']:.0f} MB"
        )
        print(
            f"{'':9s}  padding waste: {100 * r['padding_waste_epoch_grouped']:.1f}% per epoch with length grouping "
            f"(plain shuffled batches: {100 * r['padding_waste_epoch_plain']:.1f}%); "
            f"{100 * r['padding_waste_run']:.1f}% in the timed steps"
        )


if __name__ == "__main__":
    main()
