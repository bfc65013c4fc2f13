"""Turning pairs into token ids with label masks, and grouping them into padded batches.

Causal LMs see ``<bos> prompt target\\n`` with labels only on the target tokens; seq2seq models
see the source as encoder input and the target as labels. Batches group similar lengths so that
padding stays small, in an order fixed by the seed and epoch (so a resumed run sees the same data).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from medtune.data.examples import IGNORE, Example
from medtune.data.parallel import Pair
from medtune.data.prompts import translation_prompt, translation_target

__all__ = ["IGNORE", "Example", "collate", "encode_causal", "encode_seq2seq", "plan_batches"]


def encode_causal(tokenizer, prompt: str, target: str, max_length: int) -> Example:
    """Encode prompt + target; only target tokens carry labels. Over-long targets are cut at the end."""
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    room = max(1, max_length - len(prompt_ids))
    target_ids = target_ids[:room]
    return Example(prompt_ids + target_ids, [IGNORE] * len(prompt_ids) + target_ids)


def encode_seq2seq(tokenizer, src: str, tgt: str, max_length: int) -> Example:
    enc = tokenizer(src, text_target=tgt, truncation=True, max_length=max_length)
    return Example(enc["input_ids"], enc["labels"])


def encode_translation_pairs(
    tokenizer, pairs: list[Pair], seq2seq: bool, max_length: int, src_lang: str = "en", tgt_lang: str = "es"
) -> list[Example]:
    """Encode translation pairs in the prompt format used at evaluation time."""
    if seq2seq:
        return [encode_seq2seq(tokenizer, p.src, p.tgt, max_length) for p in pairs]
    return [
        encode_causal(tokenizer, translation_prompt(p.src, src_lang, tgt_lang), translation_target(p.tgt), max_length)
        for p in pairs
    ]


def plan_batches(examples: Sequence, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Index lists of one epoch's batches: shuffled, then length-grouped within windows of 32 batches.

    A sequence with a ``lengths`` attribute (packed blocks read from the token cache) is planned from
    it, without building its items.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    lengths = getattr(examples, "lengths", None) or [e.length for e in examples]
    order = list(range(len(examples)))
    rng.shuffle(order)
    window = batch_size * 32
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(examples: list[Example], pad_id: int, seq2seq: bool) -> dict[str, torch.Tensor]:
    """Right-pad a batch. Causal: input_ids/attention_mask/labels; seq2seq: labels padded separately.

    Packed examples (with ``position_ids``) get ``position_ids`` instead of an attention mask:
    positions restarting at 0 mark document boundaries, padding forms its own segment.
    """
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    lab_width = width if not seq2seq else max(len(e.labels) for e in examples)
    labels = torch.full((len(examples), lab_width), IGNORE, dtype=torch.long)
    packed = all(e.position_ids is not None for e in examples)
    positions = torch.zeros((len(examples), width), dtype=torch.long)
    for row, ex in enumerate(examples):
        ids[row, : len(ex.input_ids)] = torch.tensor(ex.input_ids)
        mask[row, : len(ex.input_ids)] = 1
        labels[row, : len(ex.labels)] = torch.tensor(ex.labels)
        if packed:
            positions[row, : len(ex.input_ids)] = torch.tensor(ex.position_ids)
            positions[row, len(ex.input_ids) :] = torch.arange(width - len(ex.input_ids))
    if packed:
        return {"input_ids": ids, "position_ids": positions, "labels": labels}
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
