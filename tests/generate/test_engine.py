"""The generation engine on a causal LM: newline stopping and batched (left-padded) decoding."""

from __future__ import annotations

import pytest
import torch

from medtune.data.prompts import translation_prompt
from medtune.errors import MedtuneError
from medtune.generate.engine import (
    GenerationStats,
    SamplingSettings,
    SeededSampler,
    StopAtNewline,
    StopAtStrings,
    cut_at_stop_string,
    derive_seed,
    generate_texts,
    newline_token_ids,
    sample_sequences,
    sample_texts,
)
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


def test_stop_at_strings_looks_only_at_new_text(tiny_tokenizer):
    def encode(text: str) -> list[int]:
        return tiny_tokenizer(text, add_special_tokens=False)["input_ids"]

    def padded(ids: list[int], width: int, left: bool) -> list[int]:
        pads = [tiny_tokenizer.pad_token_id] * (width - len(ids))
        return pads + ids if left else ids + pads

    prompts = [encode("Take it. Then rest."), encode("Hi")]  # the first prompt holds ". "
    new = [encode("Now"), encode("Tomalo. Ya")]
    prompt_width, new_width = max(map(len, prompts)), max(map(len, new))
    ids = torch.tensor(
        [padded(p, prompt_width, True) + padded(n, new_width, False) for p, n in zip(prompts, new, strict=True)]
    )
    stop = StopAtStrings(tiny_tokenizer, [". "], prompt_width)
    assert stop(ids, None).tolist() == [False, True]  # the prompt's ". " does not count


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


LOGITS = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))


def test_sampler_distribution_temperature_and_top_p_by_hand():
    def probs(temperature: float, top_p: float) -> list[float]:
        return SeededSampler([0], temperature, top_p).probabilities(LOGITS)[0].tolist()

    assert probs(1.0, 1.0) == pytest.approx([0.5, 0.3, 0.2])
    assert probs(1.0, 0.6) == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0.0])  # 0.5 < 0.6, so 0.3 joins; 0.2 does not
    assert probs(1.0, 0.5) == pytest.approx([1.0, 0.0, 0.0])  # the top token alone reaches 0.5
    assert probs(0.5, 1.0) == pytest.approx([0.25 / 0.38, 0.09 / 0.38, 0.04 / 0.38])  # p^(1/T), renormalised


def test_sampler_draws_follow_the_distribution_and_force_one_token():
    n = 4000
    scores = SeededSampler(range(n), 1.0, 0.6)(None, LOGITS.repeat(n, 1))
    assert ((scores == 0).sum(dim=1) == 1).all() and torch.isinf(scores).sum() == 2 * n
    counts = (scores == 0).sum(dim=0).tolist()
    assert counts[2] == 0  # outside the nucleus
    assert abs(counts[0] - 0.625 * n) < 4 * (n * 0.625 * 0.375) ** 0.5  # within 4 standard deviations


def test_a_rows_draws_do_not_depend_on_its_batch_neighbours():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    alone, batched = SeededSampler([11], 1.0, 0.9), SeededSampler([5, 11, 7], 1.0, 0.9)
    for _ in range(20):
        assert alone(None, logits[1:2]).argmax().item() == batched(None, logits)[1].argmax().item()


def test_derived_seeds_are_stable_across_runs_and_distinct():
    assert derive_seed(42, "q1", 0) == 2050672021766047650  # no per-process hash salt
    assert len({derive_seed(42, "q1", 0), derive_seed(42, "q1", 1), derive_seed(43, "q1", 0)}) == 3


def test_sample_texts_stops_at_an_extra_stop_token(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir))
    tok = loaded.tokenizer
    prompt = "<bos>English: Take the tablet.\nSpanish:"
    greedy = SamplingSettings(max_new_tokens=6)
    enc = tok(prompt, add_special_tokens=False, return_tensors="pt")
    ids = loaded.model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    new = ids[0, enc["input_ids"].shape[1] :].tolist()
    stop_at = next(i for i in range(1, len(new)) if new[i] not in new[:i])  # first token not seen before
    [full] = sample_texts(loaded.model, tok, [prompt], greedy)
    stop_there = SamplingSettings(max_new_tokens=6, stop_token_ids=(new[stop_at],))
    [cut] = sample_texts(loaded.model, tok, [prompt], stop_there)
    assert full == tok.decode(new, skip_special_tokens=True)
    assert cut == tok.decode(new[:stop_at], skip_special_tokens=True)


def test_sampling_needs_one_seed_per_prompt(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir))
    with pytest.raises(ValueError, match="one seed per prompt"):
        sample_texts(loaded.model, loaded.tokenizer, ["a", "b"], SamplingSettings(temperature=0.7), seeds=[1])


def test_extra_stop_tokens_merge_without_duplicates():
    settings = SamplingSettings(temperature=0.5, stop_token_ids=(5,)).with_stop_tokens([3, 5])
    assert settings.stop_token_ids == (3, 5) and settings.temperature == 0.5


def test_each_prompt_keeps_only_its_own_token_limit_in_a_shared_batch(tiny_gemma_dir, demo_pairs):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    prompts = [translation_prompt(p.src) for p in demo_pairs[:3]]
    limits = [2, 9, 5]
    args = dict(stop_at_newline=False, progress=None)
    batched = generate_texts(loaded.model, loaded.tokenizer, prompts, batch_size=3, max_new_tokens=limits, **args)
    alone = [
        generate_texts(loaded.model, loaded.tokenizer, [p], batch_size=1, max_new_tokens=n, **args)[0]
        for p, n in zip(prompts, limits, strict=True)
    ]
    assert batched == alone
    longer = generate_texts(loaded.model, loaded.tokenizer, prompts[:1], batch_size=1, max_new_tokens=9, **args)[0]
    assert longer.startswith(batched[0]) and len(longer) > len(batched[0])  # the batch ran on; the text was cut


def test_cut_at_stop_string_takes_the_earliest_of_several():
    assert cut_at_stop_string("abc. def\nghi", ["\n", "."]) == ("abc", True)
    assert cut_at_stop_string("abc", ["x"]) == ("abc", False)
    with pytest.raises(MedtuneError, match="stop string must not be empty"):
        SamplingSettings(stop_strings=("",))


def test_sample_sequences_reports_tokens_and_why_each_sequence_ended(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    tok = loaded.tokenizer
    prompt = "<bos>English: Take the tablet.\nSpanish:"
    enc = tok(prompt, add_special_tokens=False, return_tensors="pt")
    ids = loaded.model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    new = ids[0, enc["input_ids"].shape[1] :].tolist()
    full_text = tok.decode(new, skip_special_tokens=True)
    [full] = sample_sequences(loaded.model, tok, [prompt], SamplingSettings(max_new_tokens=12))
    assert (full.text, full.token_ids, full.generated, full.stopped) == (full_text, tuple(new), 12, False)
    # a stop string from the middle of the greedy text: the text is cut before it, the sequence "stopped"
    stop = full_text[len(full_text) // 2 :][:3]
    settings = SamplingSettings(max_new_tokens=12, stop_strings=(stop,))
    [cut] = sample_sequences(loaded.model, tok, [prompt], settings)
    assert cut.text == full_text[: full_text.index(stop)] and cut.stopped
    assert cut.generated <= 12 and tok.decode(cut.token_ids, skip_special_tokens=True).startswith(cut.text)
    # a stop token: not in the tokens, counted as generated
    stop_at = next(i for i in range(1, len(new)) if new[i] not in new[:i])
    [at_token] = sample_sequences(loaded.model, tok, [prompt], SamplingSettings(12, stop_token_ids=(new[stop_at],)))
    assert (at_token.token_ids, at_token.generated, at_token.stopped) == (tuple(new[:stop_at]), stop_at + 1, True)


def test_tokens_whose_output_rows_copy_a_stop_token_also_stop(tiny_gemma_dir):
    from medtune.generate.engine import INDISTINCT_COSINE, indistinct_copies

    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    weight = loaded.model.get_output_embeddings().weight
    stop = loaded.tokenizer.convert_tokens_to_ids("<eos>")
    cosine = torch.nn.functional.cosine_similarity(weight, weight[stop][None], dim=-1)
    expected = sorted((cosine >= INDISTINCT_COSINE).nonzero().flatten().tolist())
    assert indistinct_copies(loaded.model, [stop]) == expected == [stop]  # random rows: no copies
    with torch.no_grad():  # an untrained token left with (nearly) the stop token's row
        weight[42] = weight[stop] * 1.01 + 1e-4
        weight[77] = -weight[stop]  # opposite direction: not a copy
    fresh = load_model(str(tiny_gemma_dir), dtype="float32")  # a new model object: nothing cached
    with torch.no_grad():
        fresh.model.get_output_embeddings().weight.copy_(weight)
    assert indistinct_copies(fresh.model, [stop]) == sorted([stop, 42])
