"""Perplexity on the tiny Gemma model: equal to exp of a hand-computed mean NLL, windows, assistant-only
tokens for conversations, and the same loss as training."""

from __future__ import annotations

import json
import math

import pytest
import torch

from medtune.data.chat import Conversation
from medtune.data.chat_template import encode_conversation
from medtune.data.examples import IGNORE
from medtune.data.ids import text_id
from medtune.data.text import Document
from medtune.errors import MedtuneError
from medtune.eval.loglik import row_target_nll
from medtune.eval.perplexity import detect_format, document_windows, evaluate_perplexity
from medtune.models.loading import LoadedModel, load_model
from medtune.models.scoring import causal_target_loss
from medtune.train.batching import collate

DOCS = [
    Document("Keep the wound clean and dry.", "d1", "docs.txt:1"),
    Document(
        "Warfarin is an oral anticoagulant. Its effect is measured with the INR, and vitamin K reverses it "
        "over about a day; protamine reverses heparin instead.",
        "d2",
        "docs.txt:3",
    ),
    Document("Drink plenty of water.", None, "docs.txt:5"),
]
CONVERSATIONS = [
    Conversation(
        (
            {"role": "user", "content": "I have a fever since yesterday."},
            {"role": "assistant", "content": "Drink plenty of water and rest."},
        ),
        "c1",
        "chat.jsonl:1",
    ),
    Conversation(
        (
            {"role": "system", "content": "You are a careful doctor."},
            {"role": "user", "content": "My wound is red."},
            {"role": "assistant", "content": "Keep it clean and dry."},
            {"role": "user", "content": "And if it gets worse?"},
            {"role": "assistant", "content": "Call your doctor if you have a fever."},
        ),
        "c2",
        "chat.jsonl:2",
    ),
]


@pytest.fixture(scope="module")
def loaded(tiny_gemma_dir) -> LoadedModel:
    return load_model(str(tiny_gemma_dir), dtype="float32")


@pytest.fixture(scope="module")
def chat_loaded(tiny_chatml_dir) -> LoadedModel:
    """The tiny model with a ChatML template on its tokenizer (the markers are plain text to it)."""
    return load_model(str(tiny_chatml_dir), dtype="float32")


def labelled_nll(model, ids: list[int], labels: list[int]) -> tuple[float, int]:
    """Summed -log P(label) over labelled positions of one sequence, from a plain full forward pass."""
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    terms = [-float(log_probs[p - 1, labels[p]]) for p in range(1, len(ids)) if labels[p] != IGNORE]
    return sum(terms), len(terms)


def test_document_windows_cover_bos_text_eos_without_overlap(loaded):
    tok = loaded.tokenizer
    windows = document_windows(tok, DOCS[1], max_length=16)
    ids = tok(DOCS[1].text)["input_ids"] + [tok.eos_token_id]
    assert ids[0] == tok.bos_token_id
    assert [t for w in windows for t in w.input_ids] == ids  # consecutive, nothing repeated or lost
    assert [len(w.input_ids) for w in windows[:-1]] == [16] * (len(windows) - 1)
    assert all(len(w.input_ids) <= 16 for w in windows) and len(windows) > 2
    assert all(w.labels == [IGNORE, *w.input_ids[1:]] for w in windows)


def test_text_perplexity_is_exp_of_the_hand_computed_mean_nll(loaded, tmp_path):
    tok, max_length = loaded.tokenizer, 16
    total, count, per_doc = 0.0, 0, []
    for doc in DOCS:
        ids = tok(doc.text)["input_ids"] + [tok.eos_token_id]
        doc_nll, doc_count = 0.0, 0
        for start in range(0, len(ids), max_length):
            window = ids[start : start + max_length]
            nll, n = labelled_nll(loaded.model, window, [IGNORE, *window[1:]])
            doc_nll, doc_count = doc_nll + nll, doc_count + n
        per_doc.append((doc_nll, doc_count))
        total, count = total + doc_nll, count + doc_count

    metrics = evaluate_perplexity(loaded, DOCS, tmp_path, max_length=max_length, batch_size=3)

    assert metrics["kind"] == "text" and metrics["n"] == 3
    assert metrics["n_tokens"] == count
    assert metrics["mean_nll"] == pytest.approx(total / count, abs=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)
    assert "non-overlapping windows of 16 tokens" in metrics["method"]
    rows = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["d1", "d2", text_id(DOCS[2].text)]  # no id: a hash of the text
    for row, (nll, n) in zip(rows, per_doc, strict=True):
        assert row["tokens"] == n and row["nll"] == pytest.approx(nll, abs=1e-4)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_row_nll_sums_to_the_training_loss(loaded):
    examples = [w for doc in DOCS for w in document_windows(loaded.tokenizer, doc, 12)]
    batch = collate(examples, loaded.tokenizer.pad_token_id, seq2seq=False)
    rows, counts = row_target_nll(loaded.model, batch)
    with torch.no_grad():
        loss, n = causal_target_loss(loaded.model, batch)
    assert int(counts.sum()) == n == sum(e.n_target for e in examples)
    assert float(rows.sum()) == pytest.approx(float(loss), rel=1e-5)


def test_conversations_count_only_assistant_tokens(chat_loaded, tmp_path):
    tok = chat_loaded.tokenizer
    metrics = evaluate_perplexity(chat_loaded, CONVERSATIONS, tmp_path, max_length=256, batch_size=2)
    total, count = 0.0, 0
    for conversation in CONVERSATIONS:
        example = encode_conversation(tok, list(conversation.messages), 256)
        labelled = tok.decode([t for t in example.labels if t != IGNORE])
        assert "fever since" not in labelled and "careful doctor" not in labelled  # user and system turns
        nll, n = labelled_nll(chat_loaded.model, example.input_ids, example.labels)
        assert n < len(example.input_ids) // 2
        total, count = total + nll, count + n
    assert metrics["kind"] == "conversations" and metrics["n"] == 2
    assert metrics["n_tokens"] == count
    assert metrics["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)


def test_bad_perplexity_inputs_are_user_errors(loaded, tmp_path):
    with pytest.raises(MedtuneError, match="No documents or conversations"):
        evaluate_perplexity(loaded, [], tmp_path)
    with pytest.raises(MedtuneError, match="not a mix"):
        evaluate_perplexity(loaded, [DOCS[0], CONVERSATIONS[0]], tmp_path)
    with pytest.raises(MedtuneError, match="no chat template"):
        evaluate_perplexity(loaded, CONVERSATIONS, tmp_path)  # the tiny tokenizer has no template or family


def test_format_detection_from_columns():
    assert detect_format("demo:doctor_patient_dialogues.jsonl") == "conversations"
    assert detect_format("demo:medical_paragraphs.jsonl") == "text"
