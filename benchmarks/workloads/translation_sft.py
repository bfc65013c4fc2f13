"""Translation SFT on the embedded model: medtune's loop against TRL's SFTTrainer, defaults and best.

Work, the same for every variant: the embedded gemma-3-270m, LoRA r=16 / alpha=32 / dropout 0 on
q,k,v,o,gate,up,down (the translate-en-es recipe's), batch 8, learning rate 5e-4 with 5% linear
warm-up then linear decay, gradient clipping at 1.0, seed 42, the same rows of
shared/data/translation/tico19_en_es_general_health.jsonl (a seeded sample, every row seen once) in
medtune's prompt format (``English: <en>\\nSpanish:`` -> `` <es>\\n``), sequences of at most 256 tokens.
One untimed forward and backward pass on one batch warms each variant up; the timed part is the
trainer's own training call.

Variants:
  medtune       the translate-en-es recipe's setup: frozen base in bfloat16 where the CPU runs it
                natively (float32 LoRA weights, optimizer state and loss), activation checkpointing,
                logits on target positions only, length-grouped batches.
  trl-defaults  SFTTrainer with TRL 1.16's documented SFTConfig defaults: the model loaded from its
                folder in float32 (TRL's default dtype), bf16=True (mixed precision: float32 weights
                under bfloat16 autocast), gradient_checkpointing=True, loss on the completion only (the
                default for prompt-completion data, completion_only_loss=None), each batch padded to its
                longest row (no length grouping), per_device_train_batch_size 8, max_length 1024.
  trl-best      TRL at its fastest here: the base loaded in bfloat16 plus bf16=True, completion-only
                loss, padding-free batches (padding_free=True, which needs max_length=None without
                packing: every row is checked to fit in 256 tokens beforehand), batch 8, checkpointing.
                TRL 1.16 documents padding-free as FlashAttention-only but does not check it: on CPU
                (SDPA) the batch becomes one row with restarting position_ids and no attention mask,
                and transformers builds a block-diagonal causal mask from those positions, so the loss
                is right while attention spans the whole flattened row.

The learning rate and schedule are set to medtune's in every TRL variant (TRL's default 2e-5 would
make the losses incomparable). Target tokens are counted from the data the same way for all:
each completion's tokens plus one end-of-sequence token (TRL appends EOS to completions; medtune's
translation target ends at the newline, so its loop trains one token fewer per row: its own count is
in extra.trainer_target_tokens). final_loss is every trained model's mean completion-token
cross-entropy on the same held-out rows, by the same forward pass (common.completion_loss), EOS left
out (medtune never trains it: with it, medtune's loss read 23% above TRL's after 3 quick steps on
a loaded machine); losses are the trainer's own per-step logs.
"""

from __future__ import annotations

import random
import tempfile

from benchmarks.workloads._training import (
    SEED,
    medtune_extra,
    medtune_overrides,
    result_fields,
    timed_medtune_train,
    timed_trl_trainer,
    trl_common_args,
    trl_losses,
    trl_precision,
)
from benchmarks.workloads.common import (
    Target,
    completion_loss,
    completion_tokens,
    embedded_model_dir,
    read_jsonl,
    shared_data,
    workload_main,
)

VARIANTS = ("medtune", "trl-defaults", "trl-best")
BASELINES = ("trl-defaults", "trl-best")
TARGETS = (
    Target("speed", "trl-defaults", 5.0),
    Target("speed", "trl-best", 2.0),
    Target("memory", "trl-defaults", 0.7),
    Target("loss", "trl-best", 0.02),
)
DATA = "translation/tico19_en_es_general_health.jsonl"
BATCH_SIZE = 8
LR = 5e-4  # the translate-en-es recipe's
MAX_LENGTH = 256  # the recipe's train.max_length
STEPS = {False: 60, True: 3}  # full run, --quick
HELD_OUT = {False: 64, True: 8}


def sample_rows(tokenizer, quick: bool) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows) as ``{"en", "es"}`` dicts: a seeded sample, the same for every variant.

    Only rows whose prompt, completion and EOS fit in MAX_LENGTH tokens are drawn, so no variant cuts a
    row (TRL's padding-free batches cannot) and every variant trains on exactly the same tokens.
    """
    rows = [r for r in read_jsonl(shared_data(DATA)) if r.get("en", "").strip() and r.get("es", "").strip()]
    random.Random(SEED).shuffle(rows)
    n_train = STEPS[quick] * BATCH_SIZE
    wanted = n_train + HELD_OUT[quick]
    fitting = []
    for row in rows:
        (prompt, completion), *_ = held_out_ids(tokenizer, [row], eos=True)
        if len(prompt) + len(completion) <= MAX_LENGTH:
            fitting.append(row)
            if len(fitting) == wanted:
                break
    return fitting[:n_train], fitting[n_train:wanted]


def prompt_completion(row: dict) -> dict[str, str]:
    from medtune.data.prompts import translation_prompt, translation_target

    return {"prompt": translation_prompt(row["en"]), "completion": translation_target(row["es"])}


def held_out_ids(tokenizer, rows: list[dict], eos: bool = False) -> list[tuple[list[int], list[int]]]:
    """Rows as (prompt ids with BOS, completion ids), tokenized as TRL does; ``eos`` appends the EOS TRL adds.

    The held-out loss scores the completion without EOS: medtune's translation target ends at the
    newline and never trains an EOS, so scoring it would compare the stop token, not the translations.
    """
    out = []
    for row in map(prompt_completion, rows):
        prompt = tokenizer(row["prompt"])["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
        out.append((prompt, completion + [tokenizer.eos_token_id] if eos else completion))
    return out


def run_medtune(quick: bool) -> dict:
    from medtune.data.parallel import Pair
    from medtune.recipes.loader import load_recipe
    from medtune.train.batching import encode_translation_pairs
    from medtune.train.objectives import SFTObjective
    from medtune.train.setup import prepare_trainable_model

    steps = STEPS[quick]
    recipe = load_recipe("translate-en-es", medtune_overrides(steps, BATCH_SIZE, LR, MAX_LENGTH))
    trainable = prepare_trainable_model(recipe, log=lambda *_: None)
    tokenizer, model = trainable.loaded.tokenizer, trainable.model
    train_rows, held_out = sample_rows(tokenizer, quick)
    pairs = [Pair(r["en"], r["es"]) for r in train_rows]
    examples = encode_translation_pairs(tokenizer, pairs, seq2seq=False, max_length=MAX_LENGTH)
    result, wall = timed_medtune_train(trainable, recipe, examples, SFTObjective())
    return _fields(
        tokenizer,
        train_rows,
        steps,
        wall,
        completion_loss(model, held_out_ids(tokenizer, held_out)),
        [loss for _, loss in result.loss_history],
        medtune_extra(result, trainable),
    )


def run_trl(variant: str, quick: bool) -> dict:
    import torch
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    steps = STEPS[quick]
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    train_rows, held_out = sample_rows(tokenizer, quick)  # every row fits: padding-free batches cut none
    rows = [prompt_completion(r) for r in train_rows]
    best = variant == "trl-best"
    extra_args = {"padding_free": True, "max_length": None, "completion_only_loss": True} if best else {}
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            **trl_common_args(tmp, steps, BATCH_SIZE, LR),
            model_init_kwargs={"dtype": torch.bfloat16} if best else None,
            **extra_args,
        )
        trainer, wall = timed_trl_trainer(SFTTrainer, args, tokenizer, rows)
    return _fields(
        tokenizer,
        train_rows,
        steps,
        wall,
        completion_loss(trainer.model, held_out_ids(tokenizer, held_out)),
        trl_losses(trainer),
        trl_precision(trainer),
    )


def _fields(tokenizer, train_rows, steps, wall, final_loss, losses, extra) -> dict:
    tokens = completion_tokens(tokenizer, [prompt_completion(r)["completion"] for r in train_rows])
    return result_fields(steps, tokens, wall, final_loss, losses, extra)


def run_variant(variant: str, quick: bool) -> dict:
    """One variant's result fields (see common.write_result)."""
    return run_medtune(quick) if variant == "medtune" else run_trl(variant, quick)


def main() -> None:
    workload_main("translation_sft", VARIANTS, run_variant)


if __name__ == "__main__":
    main()
