"""Generation options that change speed, never outputs: the static KV cache and torch.compile give the
default (dynamic cache, eager) tokens, on the tiny Gemma (causal) and the tiny Marian (seq2seq)."""

from __future__ import annotations

import pytest
from cli_checks import assert_user_error, run_cli

from medtune.data.prompts import translation_prompt
from medtune.errors import MedtuneError
from medtune.generate.engine import (
    DecodingOptions,
    GenerationStats,
    SamplingSettings,
    derive_seed,
    generate_texts,
    sample_sequences,
)
from medtune.models.loading import load_model

STATIC = DecodingOptions(cache="static")


@pytest.fixture(scope="module")
def gemma(tiny_gemma_dir):
    return load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")


def _translate(loaded, prompts, decoding, limits):
    stats = GenerationStats()
    texts = generate_texts(
        loaded.model, loaded.tokenizer, prompts, 3, limits, progress=None, stats=stats, decoding=decoding
    )
    return texts, stats.new_tokens


def test_static_cache_translates_greedily_like_the_dynamic_cache(gemma, demo_pairs):
    prompts = [translation_prompt(p.src) for p in demo_pairs[:7]]  # 3 batches of mixed lengths, left-padded
    limits = [12, 5, 12, 9, 12, 3, 12]  # a batch decodes to its largest limit, each text keeps its own
    dynamic = _translate(gemma, prompts, DecodingOptions(), limits)
    assert dynamic[1] > 7 and len(set(dynamic[0])) > 1  # real, different texts
    assert _translate(gemma, prompts, STATIC, limits) == dynamic


def test_static_cache_samples_the_same_tokens_as_the_dynamic_cache(gemma):
    prompts = ["<bos>English: Take the tablet.\nSpanish:", "<bos>Hi", "<bos>English: Drink water every day.\n"]
    settings = SamplingSettings(max_new_tokens=10, temperature=0.9, top_p=0.95)
    seeds = [derive_seed(3, i) for i in range(len(prompts))]

    def sample(decoding):
        return sample_sequences(gemma.model, gemma.tokenizer, prompts, settings, seeds, batch_size=2, decoding=decoding)

    assert sample(STATIC) == sample(DecodingOptions())


def test_static_cache_on_an_encoder_decoder_translates_like_the_dynamic_cache(tiny_marian_dir, demo_pairs):
    marian = load_model(str(tiny_marian_dir), dtype="float32", device="cpu")
    sources = [p.src for p in demo_pairs[:5]]
    assert _translate(marian, sources, STATIC, 10) == _translate(marian, sources, DecodingOptions(), 10)


def test_the_options_select_transformers_cache_and_compilation():
    assert DecodingOptions().generate_kwargs() == {}
    # on a GPU transformers would compile a static cache's step unasked: static alone must say no
    assert STATIC.generate_kwargs() == {"cache_implementation": "static", "disable_compile": True}
    compiled = DecodingOptions(cache="static", compile=True).generate_kwargs()
    assert compiled["cache_implementation"] == "static" and compiled["compile_config"]._compile_all_devices


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (dict(cache="paged"), ["generate.cache must be one of dynamic, static; got 'paged'"]),
        (dict(compile=True), ["generate.compile needs generate.cache static", "is 'dynamic'"]),
    ],
)
def test_bad_options_are_refused_naming_the_key(options, fragments):
    with pytest.raises(MedtuneError) as caught:
        DecodingOptions(**options)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_generate_refuses_compile_without_the_static_cache_before_loading(tmp_path):
    data = tmp_path / "prompts.jsonl"
    data.write_text('{"prompt": "Hi"}\n', encoding="utf-8")
    args = ["generate", "--model", str(tmp_path / "no-model"), "--data", str(data), "--out", str(tmp_path / "o.jsonl")]
    assert_user_error(run_cli([*args, "--compile"]), "--compile needs --cache static")
    assert_user_error(run_cli([*args, "--cache", "paged"]), "--cache must be one of dynamic, static")


@pytest.mark.slow  # compiling the decoding step takes ~25 s on 2 CPU cores even for the tiny model
def test_compiled_decoding_translates_like_eager_decoding(gemma, demo_pairs):
    prompts = [translation_prompt(p.src) for p in demo_pairs[:4]]
    compiled = DecodingOptions(cache="static", compile=True)
    eager = _translate(gemma, prompts, DecodingOptions(), 8)
    assert _translate(gemma, prompts, compiled, 8) == eager
