"""Batched, length-sorted generation that stops each sequence at end of line or end of sequence."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList


@dataclass
class GenerationStats:
    sequences: int = 0
    new_tokens: int = 0
    seconds: float = 0.0

    @property
    def sequences_per_s(self) -> float:
        return self.sequences / self.seconds if self.seconds else 0.0


class StopAtNewline(StoppingCriteria):
    """Marks a sequence finished once it has produced a token containing a line break."""

    def __init__(self, newline_ids: torch.Tensor, prompt_width: int):
        self.newline_ids = newline_ids
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.prompt_width :]
        if new.shape[1] == 0:
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)
        return torch.isin(new, self.newline_ids).any(dim=1)


_NEWLINE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def newline_token_ids(tokenizer) -> torch.Tensor:
    """Ids of every vocabulary entry whose text contains a line break (cached per tokenizer)."""
    key = tokenizer
    if key not in _NEWLINE_CACHE:
        vocab = tokenizer.get_vocab()
        ids = [i for tok, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([tok])]
        _NEWLINE_CACHE[key] = torch.tensor(sorted(ids), dtype=torch.long)
    return _NEWLINE_CACHE[key]


@torch.no_grad()
def generate_texts(
    model,
    tokenizer,
    prompts: list[str],
    batch_size: int = 16,
    max_new_tokens: int | list[int] = 160,
    num_beams: int = 1,
    stop_at_newline: bool = True,
    progress: str | None = "translate",
    stats: GenerationStats | None = None,
) -> list[str]:
    """Generate one continuation per prompt, in the prompts' order.

    Prompts are sorted by length so each batch pads little; causal models are left-padded.
    Greedy when ``num_beams == 1``. For causal LMs the output is cut at the first line break.
    ``max_new_tokens`` may be one limit per prompt: a batch then stops at its largest limit, so one
    runaway sequence cannot keep a whole batch decoding to a global maximum.
    """
    limits = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(prompts)
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    model.eval()
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    outputs: list[str] = [""] * len(prompts)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "right" if seq2seq else "left"
    started = time.perf_counter()
    bar = tqdm(total=len(prompts), desc=progress, unit="sent", disable=progress is None, dynamic_ncols=True)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True)
            kwargs = dict(
                max_new_tokens=max(limits[i] for i in idx),
                num_beams=num_beams,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            if not seq2seq and stop_at_newline:
                width = enc["input_ids"].shape[1]
                kwargs["stopping_criteria"] = StoppingCriteriaList([StopAtNewline(newline_token_ids(tokenizer), width)])
            generated = model.generate(**enc, **kwargs)
            new = generated if seq2seq else generated[:, enc["input_ids"].shape[1] :]
            for row, i in enumerate(idx):
                text = tokenizer.decode(new[row], skip_special_tokens=True)
                if stats is not None:
                    stats.new_tokens += int((new[row] != tokenizer.pad_token_id).sum())
                outputs[i] = text.split("\n", 1)[0].strip() if stop_at_newline else text.strip()
            bar.update(len(idx))
    finally:
        tokenizer.padding_side = old_side
        bar.close()
    if stats is not None:
        stats.sequences += len(prompts)
        stats.seconds += time.perf_counter() - started
    return outputs
