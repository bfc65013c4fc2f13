"""medtune feedback queue (tiny Gemma and tiny Marian) and simulate: items = rows, translations = greedy decoding,
references and ids kept, re-queueing idempotent; simulated scores = sacreBLEU sentence chrF++ / 100."""

from __future__ import annotations

import json

import pytest
import torch
from cli_checks import assert_option_refused, assert_user_error, run_cli
from demo_rows import demo_records
from sacrebleu.metrics import CHRF
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from medtune.data.prompts import translation_prompt
from medtune.feedback.simulate import SIMULATED_REVIEWER
from medtune.feedback.store import FeedbackStore, database_url
from medtune.pipeline.fingerprint import hash_input

MAX_NEW_TOKENS = 12


def write_rows(tmp_path) -> tuple:
    """Four demo sentences: three with a reference and an id, the last with neither."""
    records = demo_records(4)
    rows = [{"id": f"r{n}", "en": r["en"], "es": r["es"]} for n, r in enumerate(records[:3])]
    rows.append({"en": records[3]["en"], "es": ""})
    data = tmp_path / "sentences.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return data, rows


@torch.no_grad()
def greedy_one_by_one(folder, sources: list[str], seq2seq: bool) -> list[str]:
    """The oracle: transformers' greedy generate on each prompt alone, capped as medtune caps a translation."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    loader = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = loader.from_pretrained(str(folder), dtype=torch.float32).eval()
    outputs = []
    for source in sources:
        limit = min(MAX_NEW_TOKENS, 2 * len(tokenizer(source, add_special_tokens=False)["input_ids"]) + 16)
        prompt = source if seq2seq else translation_prompt(source)
        encoded = tokenizer(prompt, return_tensors="pt")
        kwargs = {"pad_token_id": tokenizer.pad_token_id}
        generated = model.generate(**encoded, max_new_tokens=limit, do_sample=False, num_beams=1, **kwargs)
        new = generated[0] if seq2seq else generated[0, encoded["input_ids"].shape[1] :]
        outputs.append(tokenizer.decode(new, skip_special_tokens=True).split("\n", 1)[0].strip())
    return outputs


@pytest.mark.parametrize("kind", ["gemma", "marian"])
def test_queue_translates_greedily_keeps_references_and_is_idempotent(kind, tiny_gemma_dir, tiny_marian_dir, tmp_path):
    folder = tiny_gemma_dir if kind == "gemma" else tiny_marian_dir
    data, rows = write_rows(tmp_path)
    db = tmp_path / "feedback.db"
    args = ["feedback", "queue", "--model", folder, "--data", data, "--project", "p", "--db", db, "--device", "cpu"]
    args += ["--dtype", "float32", "--batch-size", "1", "--max-new-tokens", MAX_NEW_TOKENS, "--reviewers-per-item", "2"]
    first = run_cli(args)
    assert first.exit_code == 0, first.output
    assert "4 item(s) added, 0 already present" in " ".join(first.output.split())
    with FeedbackStore(database_url(str(db))) as store:
        items = store.items("p")
    assert [i.source for i in items] == [r["en"] for r in rows]
    assert [i.reference for i in items] == [r["es"] or None for r in rows]
    assert [i.external_id for i in items] == ["r0", "r1", "r2", None]
    assert [i.translation for i in items] == greedy_one_by_one(folder, [r["en"] for r in rows], kind == "marian")
    assert {i.model_id for i in items} == {str(folder)}
    assert {i.model_version for i in items} == {"sha256:" + hash_input(str(folder))[:16]}

    again = run_cli(args)
    assert again.exit_code == 0, again.output
    assert "0 item(s) added, 4 already present" in " ".join(again.output.split())
    with FeedbackStore(database_url(str(db))) as store:
        assert [i.id for i in store.items("p")] == [i.id for i in items]


def test_simulate_scores_are_sentence_chrf_over_100_and_items_without_reference_stay(tiny_marian_dir, tmp_path):
    data, rows = write_rows(tmp_path)
    db = tmp_path / "feedback.db"
    queued = run_cli(
        ["feedback", "queue", "--model", tiny_marian_dir, "--data", data, "--project", "p", "--db", db]
        + ["--device", "cpu", "--max-new-tokens", MAX_NEW_TOKENS]
    )
    assert queued.exit_code == 0, queued.output
    result = run_cli(["feedback", "simulate", "--project", "p", "--db", db])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "3 SIMULATED judgment(s)" in text and "1 item(s) have no reference and were left for human reviewers" in text
    with FeedbackStore(database_url(str(db))) as store:
        judgments = store.judgments("p")
        items = {i.id: i for i in store.items("p")}
        human = store.ensure_reviewer("ana")
        left = store.next_item(human, "p")
    chrf = CHRF(word_order=2)
    assert len(judgments) == 3
    for j in judgments:
        item = items[j.item_id]
        assert j.score == pytest.approx(chrf.sentence_score(item.translation, [item.reference]).score / 100)
        assert (j.post_edit, j.reviewer, j.simulated) == (item.reference, SIMULATED_REVIEWER, True)
    assert left is not None and left.reference is None  # the item without a reference waits for a human

    again = run_cli(["feedback", "simulate", "--project", "p", "--db", db])
    assert again.exit_code == 0 and "0 SIMULATED judgment(s)" in " ".join(again.output.split())


def test_simulate_limit(tiny_marian_dir, tmp_path):
    data, _ = write_rows(tmp_path)
    db = tmp_path / "feedback.db"
    run_cli(["feedback", "queue", "--model", tiny_marian_dir, "--data", data, "--project", "p", "--db", db])
    result = run_cli(["feedback", "simulate", "--project", "p", "--db", db, "--limit", "2"])
    assert result.exit_code == 0, result.output
    with FeedbackStore(database_url(str(db))) as store:
        assert len(store.judgments("p")) == 2


def test_queue_and_simulate_refuse_bad_input(tiny_marian_dir, tmp_path):
    db = tmp_path / "feedback.db"
    data = tmp_path / "s.csv"
    data.write_text("en,es\nHello.,Hola.\n,Vacío.\n", encoding="utf-8")
    base = ["feedback", "queue", "--model", tiny_marian_dir, "--project", "p", "--db", db]
    assert_user_error(run_cli([*base, "--data", data]), f"{data}:3: column 'en' is empty")
    assert_user_error(
        run_cli([*base, "--data", data, "--src-col", "english"]), "no source column 'english'", "--src-col"
    )
    assert_user_error(run_cli([*base, "--data", tmp_path / "missing.csv"]), "Data file not found")
    assert_option_refused(run_cli([*base, "--data", data, "--reviewers-per-item", "0"]), "--reviewers-per-item", "1")
    assert not db.exists()  # bad input is refused before the store is opened
    FeedbackStore(database_url(str(db))).close()
    assert_user_error(run_cli(["feedback", "simulate", "--project", "nope", "--db", db]), "No project 'nope'")


def test_queue_saves_chunk_by_chunk_and_a_later_run_adds_only_the_rest(tiny_marian_dir, tmp_path):
    from medtune.feedback.queue import queue_translations, read_queue_rows
    from medtune.models.loading import load_model

    data, rows = write_rows(tmp_path)
    loaded = load_model(str(tiny_marian_dir), dtype="float32", device="cpu", log=lambda _: None)
    with FeedbackStore(database_url(str(tmp_path / "f.db"))) as store:
        queue = dict(model_id="m", max_new_tokens=MAX_NEW_TOKENS, chunk_size=1, log=lambda _: None)
        rows_read = read_queue_rows(str(data), "en", "es", "id")
        first = queue_translations(store, "p", loaded, rows_read[:2], **queue)  # as if stopped after 2
        assert (first.added, first.present) == (2, 0)
        second = queue_translations(store, "p", loaded, rows_read, **queue)
        assert (second.added, second.present) == (2, 2)
        # A new version of the model with the same translations: nothing new, and the ids are the earlier items'.
        retrained = queue_translations(store, "p", loaded, rows_read, **{**queue, "model_version": "v2"})
        assert (retrained.added, retrained.present) == (0, 4)
        items = store.items("p")
    assert second.item_ids == retrained.item_ids == tuple(i.id for i in items)
    assert first.item_ids == second.item_ids[:2]
    assert [i.source for i in items] == [r["en"] for r in rows]
    assert [i.translation for i in items] == greedy_one_by_one(tiny_marian_dir, [r["en"] for r in rows], True)
