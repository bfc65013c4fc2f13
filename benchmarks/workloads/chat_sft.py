"""Chat SFT on the embedded model: medtune's chat training against TRL's SFTTrainer on conversations.

Work, the same for every variant: the embedded gemma-3-270m; a seeded sample of the single-turn
doctor-patient dialogues of shared/data/chat/genmedgpt5k_synthetic.jsonl (system, user, assistant;
only dialogues of at most 512 tokens, the chat-sft recipe's train.max_length, so nothing is cut;
256 with --quick);
each dialogue rendered by the model's own chat template; LoRA r=16 / alpha=32 / dropout 0 on
q,k,v,o,gate,up,down (the translate-en-es recipe's, the same in every workload); batch 8; learning
rate 2e-4 (the chat-sft recipe's) with 5% linear warm-up then decay; seed 42. One untimed forward and
backward pass warms each variant up.

Variants:
  medtune       the chat-sft recipe's setup (loss on the assistant turns only, end-of-turn included)
                with medtune's loop: bfloat16 frozen base where the CPU runs it, activation
                checkpointing, logits on target positions only, length-grouped batches.
  trl-defaults  SFTTrainer on ``{"messages": [...]}`` rows with TRL 1.16's documented defaults: float32
                model, bf16=True autocast, gradient checkpointing, assistant_only_loss=False (the
                default: the loss covers the whole sequence, system and user turns too), padding to
                the longest row, batch 8.
  trl-best      bfloat16 base plus bf16=True, assistant_only_loss=True, padding-free batches
                (padding_free=True with max_length=None; see translation_sft for what that does on CPU).
                assistant_only_loss works with this template as it is: the embedded model's chat
                template already wraps each assistant turn, end-of-turn token included, in
                ``{% generation %}`` markers, so TRL needs no training template of its own.

Target tokens are counted from the data the same way for all: the assistant tokens the chat
template marks (the reply plus its end-of-turn token and newline). final_loss is each trained
model's mean cross-entropy on the assistant tokens of the same held-out dialogues (common.completion_loss).
"""

from __future__ import annotations

import random
import tempfile

from benchmarks.workloads._training import (
    SEED,
    assistant_token_mask,
    assistant_tokens,
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
    embedded_model_dir,
    read_jsonl,
    shared_data,
    workload_main,
)

VARIANTS = ("medtune", "trl-defaults", "trl-best")
BASELINES = ("trl-defaults", "trl-best")
TARGETS = (Target("speed", "trl-best", 2.0),)
DATA = "chat/genmedgpt5k_synthetic.jsonl"
BATCH_SIZE = 8
LR = 2e-4  # the chat-sft recipe's
MAX_LENGTH = 512  # the chat-sft recipe's train.max_length
STEPS = {False: 20, True: 3}  # full run, --quick
HELD_OUT = {False: 32, True: 4}
QUICK_MAX_TOKENS = 256  # --quick takes only the shorter dialogues, to stay in the suite's time budget


def sample_dialogues(tokenizer, quick: bool) -> tuple[list[list[dict]], list[list[dict]]]:
    """(training dialogues, held-out dialogues): a seeded sample of single-turn dialogues that fit in
    MAX_LENGTH tokens (QUICK_MAX_TOKENS with ``quick``), the same for every variant."""
    rows = read_jsonl(shared_data(DATA))
    random.Random(SEED).shuffle(rows)
    wanted = STEPS[quick] * BATCH_SIZE + HELD_OUT[quick]
    picked: list[list[dict]] = []
    for row in rows:
        messages = row["messages"]
        if [m["role"] for m in messages][-1:] != ["assistant"] or sum(m["role"] == "assistant" for m in messages) != 1:
            continue
        if len(assistant_token_mask(tokenizer, messages)[0]) <= (QUICK_MAX_TOKENS if quick else MAX_LENGTH):
            picked.append(messages)
        if len(picked) == wanted:
            break
    n_train = STEPS[quick] * BATCH_SIZE
    return picked[:n_train], picked[n_train:]


def held_out_ids(tokenizer, dialogues: list[list[dict]]) -> list[tuple[list[int], list[int]]]:
    """Each held-out dialogue as (everything before the reply, the reply's tokens with end-of-turn)."""
    out = []
    for messages in dialogues:
        ids, mask = assistant_token_mask(tokenizer, messages)
        first = mask.index(1)
        out.append((ids[:first], ids[first:]))
    return out


def run_medtune(quick: bool) -> dict:
    from medtune.recipes.loader import load_recipe
    from medtune.train.objectives import SFTObjective
    from medtune.train.setup import prepare_trainable_model
    from medtune.train.sft import encode_conversations

    steps = STEPS[quick]
    recipe = load_recipe("chat-sft", medtune_overrides(steps, BATCH_SIZE, LR, MAX_LENGTH))
    trainable = prepare_trainable_model(recipe, log=lambda *_: None)
    tokenizer, model = trainable.loaded.tokenizer, trainable.model
    train, held_out = sample_dialogues(tokenizer, quick)
    examples, _ = encode_conversations(tokenizer, train, MAX_LENGTH, on_bad_rows="fail")
    result, wall = timed_medtune_train(trainable, recipe, examples, SFTObjective())
    return result_fields(
        steps,
        assistant_tokens(tokenizer, train),
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
    train, held_out = sample_dialogues(tokenizer, quick)
    best = variant == "trl-best"
    extra_args = {"padding_free": True, "max_length": None, "assistant_only_loss": True} if best else {}
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(
            **trl_common_args(tmp, steps, BATCH_SIZE, LR),
            model_init_kwargs={"dtype": torch.bfloat16} if best else None,
            **extra_args,
        )
        trainer, wall = timed_trl_trainer(SFTTrainer, args, tokenizer, [{"messages": m} for m in train])
    return result_fields(
        steps,
        assistant_tokens(tokenizer, train),
        wall,
        completion_loss(trainer.model, held_out_ids(tokenizer, held_out)),
        trl_losses(trainer),
        {**trl_precision(trainer), "assistant_only_loss": args.assistant_only_loss},
    )


def run_variant(variant: str, quick: bool) -> dict:
    """One variant's result fields (see common.write_result)."""
    return run_medtune(quick) if variant == "medtune" else run_trl(variant, quick)


def main() -> None:
    workload_main("chat_sft", VARIANTS, run_variant)


if __name__ == "__main__":
    main()
