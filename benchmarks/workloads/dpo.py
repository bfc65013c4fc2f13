"""DPO on the embedded model: medtune's DPO objective in its loop against TRL's DPOTrainer, both with PEFT.

Work, the same for both variants: the embedded gemma-3-270m with a fresh LoRA (r=16 / alpha=32 /
dropout 0 on q,k,v,o,gate,up,down, as in every workload) whose disabled adapter is the reference
model (no second copy of the weights), the sigmoid DPO loss with beta 0.1, batch 8 pairs, learning
rate 5e-5 (the RLAIF recipes' DPO stage) with 5% linear warm-up then decay, seed 42. The pairs are
built in memory from shared/data/qa/medmcqa_dev.jsonl: the prompt is a user turn with the question and its lettered
options, chosen is the correct option's text, rejected a wrong option's text (seeded choice); each
side is rendered by the model's chat template, and only pairs of at most 512 tokens a side are kept
(so no trainer cuts anything). One untimed forward and backward pass warms each variant up.

Variants:
  medtune  the loop with DPOObjective (medtune's DPO: the reference pass with the adapter disabled
           first, chosen and rejected in one batch, log-probabilities from target positions only),
           bfloat16 frozen base where the CPU runs it, activation checkpointing, length-grouped batches.
  trl-dpo  DPOTrainer with TRL 1.16's documented DPOConfig defaults (float32 model, bf16=True autocast,
           gradient checkpointing, loss_type sigmoid, padding to the longest, disable_dropout) and the
           same peft_config, beta, batch, steps and schedule; ref_model=None, so TRL also uses the
           adapter-disabled model as the reference.

Target tokens are the pairs' completion tokens, counted from the data the same way for both: the
assistant tokens (end-of-turn included) of the chosen and of the rejected answer. final_loss is each
trained model's mean DPO loss on the same held-out pairs (common.dpo_loss).
"""

from __future__ import annotations

import random
import tempfile

from benchmarks.workloads._training import (
    SEED,
    assistant_token_mask,
    medtune_extra,
    medtune_overrides,
    result_fields,
    timed_medtune_train,
    timed_trl_trainer,
    trl_common_args,
    trl_losses,
    trl_precision,
)
from benchmarks.workloads.common import Target, dpo_loss, embedded_model_dir, read_jsonl, shared_data, workload_main

VARIANTS = ("medtune", "trl-dpo")
BASELINES = ("trl-dpo",)
TARGETS = (Target("speed", "trl-dpo", 2.0), Target("memory", "trl-dpo", 0.8))
DATA = "qa/medmcqa_dev.jsonl"
BATCH_SIZE = 8  # pairs per step
LR = 5e-5  # the RLAIF recipes' DPO stage
BETA = 0.1
MAX_LENGTH = 512
STEPS = {False: 20, True: 3}  # full run, --quick
HELD_OUT = {False: 32, True: 4}


def question_turn(row: dict) -> str:
    """The user turn: the question, a blank line, one ``A. text`` line per option."""
    options = "\n".join(f"{letter}. {text}" for letter, text in sorted(row["options"].items()))
    return f"{row['question'].strip()}\n\n{options}"


def build_pairs(rows: list[dict], seed: int = SEED) -> list[dict]:
    """``{"id", "prompt", "chosen", "rejected"}`` per question: chosen the correct option's text, rejected a
    wrong option's text drawn with ``seed`` (questions whose texts are empty or equal are left out)."""
    rng = random.Random(seed)
    pairs = []
    for row in rows:
        options = {k: str(v).strip() for k, v in row["options"].items()}
        chosen = options.get(row["answer"], "")
        wrong = sorted(k for k, v in options.items() if k != row["answer"] and v and v != chosen)
        if not chosen or not wrong:
            continue
        pairs.append(
            {"id": row["id"], "prompt": question_turn(row), "chosen": chosen, "rejected": options[rng.choice(wrong)]}
        )
    return pairs


def side_ids(tokenizer, pair: dict, side: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) of one side of a pair as the chat template renders it."""
    messages = [{"role": "user", "content": pair["prompt"]}, {"role": "assistant", "content": pair[side]}]
    ids, mask = assistant_token_mask(tokenizer, messages)
    first = mask.index(1)
    return ids[:first], ids[first:]


def sample_pairs(tokenizer, quick: bool) -> tuple[list[dict], list[dict]]:
    """(training pairs, held-out pairs): a seeded sample whose sides fit in MAX_LENGTH, the same for both variants."""
    pairs = build_pairs(read_jsonl(shared_data(DATA)))
    random.Random(SEED).shuffle(pairs)
    wanted = STEPS[quick] * BATCH_SIZE + HELD_OUT[quick]
    picked = [
        p for p in pairs if all(sum(map(len, side_ids(tokenizer, p, s))) <= MAX_LENGTH for s in ("chosen", "rejected"))
    ][:wanted]
    n_train = STEPS[quick] * BATCH_SIZE
    return picked[:n_train], picked[n_train:]


def pair_tokens(tokenizer, pairs: list[dict]) -> int:
    """The pairs' completion tokens: chosen and rejected answers, end-of-turn included."""
    return sum(len(side_ids(tokenizer, p, side)[1]) for p in pairs for side in ("chosen", "rejected"))


def held_out_ids(tokenizer, pairs: list[dict]) -> list[tuple[list[int], list[int], list[int]]]:
    out = []
    for pair in pairs:
        prompt, chosen = side_ids(tokenizer, pair, "chosen")
        out.append((prompt, chosen, side_ids(tokenizer, pair, "rejected")[1]))
    return out


def run_medtune(quick: bool) -> dict:
    from medtune.data.preference import PreferencePair
    from medtune.recipes.loader import load_recipe
    from medtune.train.objectives import DPOObjective, disable_dropout
    from medtune.train.preference_data import PairEncoding, encode_preference_pairs
    from medtune.train.setup import prepare_trainable_model

    steps = STEPS[quick]
    overrides = [*medtune_overrides(steps, BATCH_SIZE, LR, MAX_LENGTH), "train.objective=dpo", f"train.beta={BETA}"]
    recipe = load_recipe("qa-sft", overrides)
    trainable = prepare_trainable_model(recipe, log=lambda *_: None)
    tokenizer, model = trainable.loaded.tokenizer, trainable.model
    train, held_out = sample_pairs(tokenizer, quick)
    pairs = [
        PreferencePair(p["id"], [{"role": "user", "content": p["prompt"]}], p["chosen"], p["rejected"]) for p in train
    ]
    examples, _, _ = encode_preference_pairs(
        tokenizer, pairs, PairEncoding("qa", False, MAX_LENGTH), on_bad_rows="fail"
    )
    disable_dropout(model)  # as train_preference does (and TRL's disable_dropout=True)
    objective = DPOObjective(beta=BETA)
    result, wall = timed_medtune_train(trainable, recipe, examples, objective)
    return result_fields(
        steps,
        pair_tokens(tokenizer, train),
        wall,
        dpo_loss(model, held_out_ids(tokenizer, held_out), BETA),
        [loss for _, loss in result.loss_history],
        medtune_extra(result, trainable),
    )


def run_trl(quick: bool) -> dict:
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    steps = STEPS[quick]
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    train, held_out = sample_pairs(tokenizer, quick)
    rows = [
        {
            "prompt": [{"role": "user", "content": p["prompt"]}],
            "chosen": [{"role": "assistant", "content": p["chosen"]}],
            "rejected": [{"role": "assistant", "content": p["rejected"]}],
        }
        for p in train
    ]
    with tempfile.TemporaryDirectory() as tmp:
        args = DPOConfig(**trl_common_args(tmp, steps, BATCH_SIZE, LR), beta=BETA)
        trainer, wall = timed_trl_trainer(DPOTrainer, args, tokenizer, rows)
    return result_fields(
        steps,
        pair_tokens(tokenizer, train),
        wall,
        dpo_loss(trainer.model, held_out_ids(tokenizer, held_out), BETA),
        trl_losses(trainer),
        trl_precision(trainer),
    )


def run_variant(variant: str, quick: bool) -> dict:
    """One variant's result fields (see common.write_result)."""
    return run_medtune(quick) if variant == "medtune" else run_trl(quick)


def main() -> None:
    workload_main("dpo", VARIANTS, run_variant)


if __name__ == "__main__":
    main()
