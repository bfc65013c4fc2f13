"""The generation engine on a causal LM: newline stopping and batched (left-padded) decoding."""

from __future__ import annotations

import torch

from medtune.data.prompts import translation_prompt
from medtune.generate.engine import GenerationStats, StopAtNewline, generate_texts, newline_token_ids
from medtune.models.loading import load_model


def test_newline_token_ids_finds_the_line_break_tokens(tiny_tokenizer):
    ids = newline_token_ids(tiny_tokenizer).tolist()
    assert ids and all("\n" in tiny_tokenizer.decode([i]) for i in ids)
    assert set(tiny_tokenizer("a\nb", add_special_tokens=False)["input_ids"]) & set(ids)


def test_stop_at_newline_looks_only_at_new_tokens():
    stop = StopAtNewline(torch.tensor([7]), prompt_width=3)
    ids = torch.tensor([[7, 1, 1, 2, 3], [1, 1, 1, 2, 7], [1, 1, 1, 7, 2]])  # a 7 in the prompt does not count
    assert stop(ids, None).tolist() == [False, True, True]
    assert stop(ids[:, :3], None).tolist() == [False, False, False]


def test_causal_batched_generation_matches_one_by_one(tiny_gemma_dir, demo_pairs):
    loaded = load_model(str(tiny_gemma_dir))
    prompts = [translation_prompt(p.src) for p in demo_pairs[:5]]
    stats = GenerationStats()
    batched = generate_texts(
        loaded.model, loaded.tokenizer, prompts, batch_size=3, max_new_tokens=10, progress=None, stats=stats
    )
    single = [
        generate_texts(loaded.model, loaded.tokenizer, [p], batch_size=1, max_new_tokens=10, progress=None)[0]
        for p in prompts
    ]
    assert batched == single
    assert all(isinstance(t, str) and "\n" not in t for t in batched)
    assert stats.sequences == 5 and 0 < stats.new_tokens <= 50
    assert loaded.tokenizer.padding_side == "right"  # left padding was only for generation
