"""Candidate generation from a local policy: seeded, batch-independent, deduplicated, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medtune.data.chat_template import render_chat_prompt, stop_token_ids
from medtune.data.mcq import MCQItem
from medtune.data.prompts import translation_prompt
from medtune.errors import MedtuneError
from medtune.generate.engine import SamplingSettings, derive_seed, sample_texts
from medtune.models.loading import load_model
from medtune.rlaif.candidates import candidate_id, generate_candidates, read_candidates
from medtune.rlaif.prompt_items import prompt_items_from_mcq, prompt_items_from_pairs

QUESTIONS = [
    MCQItem(f"q{i}", question, {"A": "Fever", "B": "Rash", "C": "Cough"}, "A")
    for i, question in enumerate(
        ["Main sign of flu?", "What does aspirin treat in a child with a long history of pain?", "Sign?", "Why?"]
    )
]
SETTINGS = dict(n=3, temperature=1.0, top_p=0.95, max_new_tokens=8, seed=7)


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def chat_policy(tiny_chat_gemma_dir):
    return load_model(str(tiny_chat_gemma_dir), dtype="float32", device="cpu")


def _texts(path: Path) -> dict[str, str]:
    return {row["id"]: row["text"] for row in read_candidates(path)}


def test_candidates_equal_the_engine_sampling_each_prompt_with_its_own_seed(chat_policy, tmp_path):
    prompts = prompt_items_from_mcq(QUESTIONS, system="Answer briefly.")
    out = tmp_path / "candidates.jsonl"
    stats = generate_candidates(prompts, out, loaded=chat_policy, batch_size=12, log=quiet, **SETTINGS)
    rows = read_candidates(out)
    assert [(r["prompt_id"], r["sample"]) for r in rows] == [(p.id, k) for p in prompts for k in range(3)]
    assert [r["id"] for r in rows] == [candidate_id(p.id, k, 7) for p in prompts for k in range(3)]
    assert all(r["gold"] == "A" and r["prompt"] == p.prompt for p in prompts for r in rows if r["prompt_id"] == p.id)
    tok = chat_policy.tokenizer
    settings = SamplingSettings(max_new_tokens=8, temperature=1.0, top_p=0.95).with_stop_tokens(stop_token_ids(tok))
    for row in rows[:4]:  # the oracle: the engine on this prompt alone, seeded by (seed, prompt id, sample)
        prompt = next(p for p in prompts if p.id == row["prompt_id"])
        seed = derive_seed(7, prompt.id, row["sample"])
        [alone] = sample_texts(chat_policy.model, tok, [render_chat_prompt(tok, prompt.prompt)], settings, seeds=[seed])
        assert row["text"] == alone.strip()
    assert stats.prompts == 4 and stats.candidates == 12 and stats.generated == 12 and stats.resumed_prompts == 0
    assert stats.to_dict()["candidates_per_s"] == stats.candidates_per_s > 0


def test_a_prompts_candidates_do_not_depend_on_its_batch_or_on_the_call(chat_policy, tmp_path):
    prompts = prompt_items_from_mcq(QUESTIONS)
    generate_candidates(prompts, tmp_path / "all.jsonl", loaded=chat_policy, batch_size=12, log=quiet, **SETTINGS)
    for i, prompt in enumerate(prompts[:2]):
        generate_candidates([prompt], tmp_path / f"{i}.jsonl", loaded=chat_policy, batch_size=1, log=quiet, **SETTINGS)
    alone = _texts(tmp_path / "0.jsonl") | _texts(tmp_path / "1.jsonl")
    together = _texts(tmp_path / "all.jsonl")
    assert alone == {k: together[k] for k in alone}
    other_seed = generate_candidates(
        prompts[:2], tmp_path / "seed8.jsonl", loaded=chat_policy, log=quiet, **SETTINGS | {"seed": 8}
    )
    assert other_seed.candidates == 6
    assert sorted(_texts(tmp_path / "seed8.jsonl").values()) != sorted(alone.values())


def test_greedy_candidates_are_counted_as_exact_duplicates(chat_policy, tmp_path):
    out = tmp_path / "greedy.jsonl"
    prompts = prompt_items_from_mcq(QUESTIONS[:2])
    stats = generate_candidates(prompts, out, loaded=chat_policy, log=quiet, **SETTINGS | {"temperature": 0.0})
    rows = read_candidates(out)
    assert [r["duplicate_of"] for r in rows] == [None, rows[0]["id"], rows[0]["id"], None, rows[3]["id"], rows[3]["id"]]
    assert (stats.exact_duplicates, stats.near_duplicates, stats.prompts_with_fewer_than_two_distinct) == (4, 0, 2)


def test_a_rerun_keeps_complete_prompts_and_regenerates_only_the_interrupted_ones(chat_policy, tmp_path):
    prompts = prompt_items_from_mcq(QUESTIONS)
    full = tmp_path / "full.jsonl"
    generate_candidates(prompts, full, loaded=chat_policy, batch_size=3, log=quiet, **SETTINGS)
    lines = full.read_text(encoding="utf-8").splitlines(keepends=True)
    # Two prompts complete (one row edited so that a regeneration would show), one with 2 of its
    # 3 rows, and a line cut off mid-write: what a kill during the third batch leaves.
    first = json.loads(lines[0]) | {"text": "kept as written"}
    interrupted = tmp_path / "candidates.jsonl"
    interrupted.write_text(json.dumps(first) + "\n" + "".join(lines[1:8]) + lines[8][:20], encoding="utf-8")
    logged: list[str] = []
    stats = generate_candidates(prompts, interrupted, loaded=chat_policy, batch_size=3, log=logged.append, **SETTINGS)
    assert (stats.resumed_prompts, stats.generated, stats.candidates) == (2, 6, 12)
    assert any("removing 2 candidate rows of 1 prompt(s) left incomplete and a cut-off last line" in m for m in logged)
    assert _texts(interrupted) == _texts(full) | {first["id"]: "kept as written"}
    again = generate_candidates(prompts, interrupted, loaded=chat_policy, log=quiet, **SETTINGS)
    assert (again.resumed_prompts, again.generated) == (4, 0)


def test_a_file_from_another_run_is_refused_and_left_untouched(chat_policy, tmp_path):
    prompts = prompt_items_from_mcq(QUESTIONS[:2])
    out = tmp_path / "candidates.jsonl"
    generate_candidates(prompts, out, loaded=chat_policy, log=quiet, **SETTINGS)
    before = out.read_bytes()
    with pytest.raises(MedtuneError, match="another seed or more candidates per prompt than this run's seed 8"):
        generate_candidates(prompts, out, loaded=chat_policy, log=quiet, **SETTINGS | {"seed": 8})
    with pytest.raises(MedtuneError, match="prompt 'q1', which is not among the prompts of this run"):
        generate_candidates(prompts[:1], out, loaded=chat_policy, log=quiet, **SETTINGS)
    assert out.read_bytes() == before
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"question": "mine"}\n', encoding="utf-8")
    with pytest.raises(MedtuneError, match=r"notes.jsonl:1: no id, prompt_id, sample, text field"):
        generate_candidates(prompts, notes, loaded=chat_policy, log=quiet, **SETTINGS)
    assert notes.read_text(encoding="utf-8") == '{"question": "mine"}\n'


def test_bad_settings_name_the_option(chat_policy, tmp_path):
    prompts = prompt_items_from_mcq(QUESTIONS[:1])
    with pytest.raises(MedtuneError, match="generate.n must be at least 1"):
        generate_candidates(prompts, tmp_path / "c.jsonl", loaded=chat_policy, n=0, log=quiet)
    with pytest.raises(MedtuneError, match="top-p must be in"):
        generate_candidates(prompts, tmp_path / "c.jsonl", loaded=chat_policy, top_p=0.0, log=quiet)
    with pytest.raises(MedtuneError, match="Prompt id 'q0' appears twice"):
        generate_candidates(prompts * 2, tmp_path / "c.jsonl", loaded=chat_policy, log=quiet)
    assert not (tmp_path / "c.jsonl").exists()


def test_causal_translation_candidates_are_one_line_sampled_from_the_translation_prompt(
    tiny_gemma_dir, demo_pairs, tmp_path
):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    prompts = prompt_items_from_pairs(demo_pairs[:3])
    out = tmp_path / "candidates.jsonl"
    settings = SETTINGS | {"max_new_tokens": 12}
    generate_candidates(prompts, out, loaded=loaded, task="translation", batch_size=9, log=quiet, **settings)
    rows = read_candidates(out)
    assert len(rows) == 9 and all(r["reference"] == demo_pairs[i // 3].tgt for i, r in enumerate(rows))
    sampling = SamplingSettings(max_new_tokens=12, temperature=1.0, top_p=0.95)
    for row in rows:  # the oracle: sampling without stopping, cut at the first line break afterwards
        prompt = translation_prompt(demo_pairs[rows.index(row) // 3].src)
        seeds = [derive_seed(7, row["prompt_id"], row["sample"])]
        [free] = sample_texts(loaded.model, loaded.tokenizer, [prompt], sampling, seeds=seeds, add_special_tokens=True)
        assert row["text"] == free.split("\n", 1)[0].strip() and "\n" not in row["text"]


def test_marian_candidates_are_seeded_and_batch_independent(tiny_marian_dir, demo_pairs, tmp_path):
    loaded = load_model(str(tiny_marian_dir), dtype="float32", device="cpu")
    prompts = prompt_items_from_pairs(demo_pairs[:4])
    settings = SETTINGS | {"max_new_tokens": 10}
    stats = generate_candidates(
        prompts, tmp_path / "all.jsonl", loaded=loaded, task="translation", batch_size=12, log=quiet, **settings
    )
    generate_candidates(
        prompts[1:2], tmp_path / "one.jsonl", loaded=loaded, task="translation", batch_size=1, log=quiet, **settings
    )
    together, alone = _texts(tmp_path / "all.jsonl"), _texts(tmp_path / "one.jsonl")
    assert stats.candidates == 12 and alone == {k: together[k] for k in alone}
    assert len(set(together.values())) > 1  # sampled, not greedy
    assert not any("<pad>" in t or "</s>" in t for t in together.values())
    with pytest.raises(MedtuneError, match="writes translations only"):
        generate_candidates(prompts, tmp_path / "qa.jsonl", loaded=loaded, task="qa", log=quiet)
