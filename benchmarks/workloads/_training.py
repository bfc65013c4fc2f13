"""What the training workloads (translation_sft, chat_sft, dpo) share: the LoRA, the warm-up passes,
TRL's common arguments and logs, assistant-token counts and the result fields.

Not a workload itself (the leading underscore keeps it out of the suite's list).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.workloads.common import peak_mem_mb

SEED = 42
WARMUP_RATIO = 0.05  # medtune's default train.warmup_ratio


def lora_settings() -> dict[str, Any]:
    """The translate-en-es recipe's LoRA (medtune's defaults): rank, alpha, dropout, target modules."""
    from medtune.recipes.schema import LoraSection

    lora = LoraSection()
    return {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout, "target_modules": list(lora.target_modules)}


def lora_overrides() -> list[str]:
    """``--set`` overrides that give any medtune recipe the same LoRA as :func:`peft_lora_config`."""
    lora = lora_settings()
    return [
        f"train.lora.r={lora['r']}",
        f"train.lora.alpha={lora['alpha']}",
        f"train.lora.dropout={lora['dropout']}",
        f"train.lora.target_modules=[{','.join(lora['target_modules'])}]",
    ]


def peft_lora_config():
    """The same LoRA as a PEFT config, for TRL's ``peft_config``."""
    from peft import LoraConfig

    lora = lora_settings()
    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )


def medtune_overrides(steps: int, batch_size: int, lr: float, max_length: int) -> list[str]:
    """The schedule and LoRA every medtune variant trains with (no evaluation or checkpoint inside the timing)."""
    return [
        f"seed={SEED}",
        f"train.max_steps={steps}",
        f"train.batch_size={batch_size}",
        f"train.lr={lr}",
        f"train.warmup_ratio={WARMUP_RATIO}",
        f"train.max_length={max_length}",
        "train.eval_every=1000000",
        "train.save_every=1000000",
        *lora_overrides(),
    ]


def trl_common_args(output_dir: str, steps: int, batch_size: int, lr: float) -> dict[str, Any]:
    """Arguments every TRL variant shares with medtune's run: batch, steps, learning rate and warm-up,
    seed; one log entry per step (the per-step losses); nothing saved or reported."""
    import torch

    return {
        "output_dir": output_dir,
        "per_device_train_batch_size": batch_size,
        "max_steps": steps,
        "learning_rate": lr,
        "warmup_steps": int(WARMUP_RATIO * steps),  # medtune's warm-up length
        "seed": SEED,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": not torch.cuda.is_available(),
    }


def warm_up_medtune(model, objective, items: list, pad_id: int) -> None:
    """One untimed forward and backward pass through medtune's objective; the gradients are dropped."""
    from medtune.train.objectives import on_model_device

    batch = on_model_device(objective.collate(items, pad_id, False), model)
    loss_sum, _ = objective.loss(model, batch, False)
    loss_sum.backward()
    model.zero_grad(set_to_none=True)


def warm_up_trl(trainer) -> None:
    """One untimed forward and backward pass on one batch of the trainer's own data loader, under its own
    precision context (no optimizer step); the gradients are dropped."""
    batch = next(iter(trainer.get_train_dataloader()))  # already on the trainer's device
    trainer.model.train()
    with trainer.compute_loss_context_manager():
        loss = trainer.compute_loss(trainer.model, batch)
    trainer.accelerator.backward(loss)
    trainer.model.zero_grad(set_to_none=True)


def timed_medtune_train(trainable, recipe, examples: list, objective) -> tuple[Any, float]:
    """One untimed warm-up pass, then medtune's loop over ``examples`` timed: (the loop's result, wall seconds)."""
    import tempfile
    import time
    from pathlib import Path

    from medtune.train.loop import train_loop
    from medtune.train.setup import loop_config

    model, pad_id = trainable.model, trainable.loaded.tokenizer.pad_token_id
    warm_up_medtune(model, objective, examples[: recipe.train.batch_size], pad_id)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train_loop(
            model,
            examples,
            [],
            loop_config(recipe, trainable.autocast_dtype),
            pad_id,
            False,
            Path(tmp),
            log=lambda *_: None,
            objective=objective,
        )
        return result, time.perf_counter() - started


def timed_trl_train(trainer) -> float:
    """One untimed warm-up pass, the suite's seed, then ``trainer.train()`` timed: wall seconds."""
    import time

    from transformers import set_seed

    warm_up_trl(trainer)
    set_seed(SEED)
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def timed_trl_trainer(trainer_cls, args, tokenizer, rows: list[dict]) -> tuple[Any, float]:
    """``trainer_cls`` (a TRL trainer) on the embedded model with the suite's LoRA over ``rows``, timed as
    :func:`timed_trl_train` does: (the trained trainer, wall seconds)."""
    from datasets import Dataset

    from benchmarks.workloads.common import embedded_model_dir

    trainer = trainer_cls(
        model=str(embedded_model_dir()),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_lora_config(),
    )
    return trainer, timed_trl_train(trainer)


def trl_precision(trainer) -> dict[str, Any]:
    """How a TRL run computed: the dtype its model was loaded in, and whether bf16 autocast was on."""
    dtype = str(next(trainer.model.parameters()).dtype).removeprefix("torch.")
    return {"base_dtype": dtype, "bf16_autocast": trainer.args.bf16}


def medtune_extra(result, trainable) -> dict[str, Any]:
    """What medtune's loop reports beside the suite's fields: its own target-token count, the padding
    share of its batches and how it computed (precision)."""
    return {
        "trainer_target_tokens": result.target_tokens,
        "padding_waste": result.padding_waste,
        **trainable.precision_info(),
    }


def trl_losses(trainer) -> list[float]:
    """The per-step training losses TRL logged (``logging_steps=1``)."""
    return [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]


def assistant_token_mask(tokenizer, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """(token ids, assistant mask) of a conversation rendered by the tokenizer's chat template; the mask
    marks the tokens inside the template's ``{% generation %}`` blocks (end-of-turn included)."""
    encoded = tokenizer.apply_chat_template(
        list(messages), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    return list(encoded["input_ids"]), list(encoded["assistant_masks"])


def assistant_tokens(tokenizer, conversations: Sequence[Sequence[dict]]) -> int:
    """Target tokens of chat data, counted the same way for every variant: the assistant turns' tokens
    as the chat template marks them, each turn's end-of-turn token included."""
    return sum(sum(assistant_token_mask(tokenizer, messages)[1]) for messages in conversations)


def result_fields(
    steps: int, tokens: int, wall: float, final_loss: float | None, losses: list[float], extra: dict
) -> dict[str, Any]:
    """The result fields a workload returns (see common.write_result), peak memory measured now."""
    return {
        "steps": steps,
        "target_tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall,
        "peak_mem_mb": peak_mem_mb(),
        "final_loss": final_loss,
        "losses": losses,
        "extra": extra,
    }
