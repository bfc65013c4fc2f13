"""The generation workload's three variants on the tiny Gemma: the same texts and the same token
counts (so tokens/s compare like with like), and the one-at-a-time comparison it reports."""

from __future__ import annotations

import tempfile

import pytest

import benchmarks.workloads.generation as generation
from medtune.data.prompts import translation_prompt
from medtune.generate.engine import DecodingOptions
from medtune.models.loading import load_model


@pytest.fixture(scope="module")
def workload():
    return generation


def test_variants_and_baselines_follow_the_suite_interface(workload):
    assert workload.VARIANTS == ("medtune-batched", "hf-one-at-a-time", "hf-batched-unsorted")
    assert workload.BASELINES == ("hf-one-at-a-time", "hf-batched-unsorted")


def test_tokens_are_counted_up_to_and_including_the_stop(workload):
    assert workload.counted_tokens([5, 6, 9, 0, 0], {9}, 0) == 3  # 5, 6 and the stop token 9
    assert workload.counted_tokens([5, 6, 7, 0], {9}, 0) == 3  # no stop: the non-padding tokens
    assert workload.counted_tokens([9, 5], {9}, 0) == 1


def test_the_three_variants_give_the_same_texts_and_token_counts(workload, tiny_gemma_dir, demo_pairs):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    model, tok = loaded.model.eval(), loaded.tokenizer
    prompts = [translation_prompt(p.src, "en", "es", demo_pairs[20:21]) for p in demo_pairs[:6]]
    medtune = workload.medtune_generate(model, tok, prompts, 12, DecodingOptions())
    one_at_a_time = workload.hf_generate(model, tok, prompts, 1, 12)
    unsorted = workload.hf_generate(model, tok, prompts, 4, 12)
    assert medtune == one_at_a_time == unsorted
    texts, tokens = medtune
    assert len(set(texts)) > 1 and 6 <= tokens <= 6 * 12


def test_the_later_of_two_variants_reports_whether_their_texts_agree(workload, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the texts files go to this test's folder
    prompts, texts = ["a", "b"], ["uno", "dos"]
    first = workload.compare_with_one_at_a_time("medtune-batched", texts, prompts, 8)
    assert first == {"identical_to_one_at_a_time": None}  # nothing to compare with yet
    reference = workload.compare_with_one_at_a_time("hf-one-at-a-time", texts, prompts, 8)
    assert reference == {"identical_to_one_at_a_time": True, "batched_variants_identical": {"medtune-batched": True}}
    later = workload.compare_with_one_at_a_time("hf-batched-unsorted", ["uno", "tres"], prompts, 8)
    assert later == {"identical_to_one_at_a_time": False, "sentences_identical": 1}
    other_length = workload.compare_with_one_at_a_time("hf-batched-unsorted", texts, prompts, 9)
    assert other_length == {"identical_to_one_at_a_time": None}  # another setting: another key
