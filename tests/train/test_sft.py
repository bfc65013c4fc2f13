"""Chat-template SFT: encoding policy, and a short training run on a tiny Gemma."""

from __future__ import annotations

import json

import pytest

from medtune.data.chat_template import GEMMA_CHAT_TEMPLATE
from medtune.errors import MedtuneError
from medtune.models.loading import load_model
from medtune.recipes.schema import Recipe
from medtune.train.sft import encode_conversations, train_chat

CONVERSATIONS = [
    [
        {"role": "user", "content": "I have a sore throat and a mild fever."},
        {"role": "assistant", "content": "Drink fluids, rest, and take paracetamol for the fever."},
    ],
    [
        {"role": "system", "content": "You are a careful clinician."},
        {"role": "user", "content": "Can I take ibuprofen with my blood pressure tablets?"},
        {"role": "assistant", "content": "Ask your doctor first: ibuprofen can raise blood pressure."},
        {"role": "user", "content": "What about paracetamol?"},
        {"role": "assistant", "content": "Paracetamol is usually safe at normal doses."},
    ],
]


def test_template_refusal_is_counted_or_refused(tiny_chat_gemma_dir):
    tok = load_model(str(tiny_chat_gemma_dir)).tokenizer
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ m['content'] }}{% endfor %}"
    )
    examples, report = encode_conversations(tok, CONVERSATIONS, 256, "skip", origins=["a.jsonl:1", "a.jsonl:2"])
    assert report.encoded == 1 and len(examples) == 1
    assert report.skipped[0].startswith("a.jsonl:2: ")
    with pytest.raises(MedtuneError, match="a.jsonl:2"):
        encode_conversations(tok, CONVERSATIONS, 256, "fail", origins=["a.jsonl:1", "a.jsonl:2"])


def test_truncation_is_counted_and_labelless_rows_skipped(tiny_chat_gemma_dir):
    tok = load_model(str(tiny_chat_gemma_dir)).tokenizer
    _, report = encode_conversations(tok, CONVERSATIONS, 30)
    assert report.truncated + len(report.skipped) == 2
    examples, report = encode_conversations(tok, CONVERSATIONS, 4096)
    assert report.truncated == 0 and not report.skipped and all(e.n_target > 0 for e in examples)


def test_train_chat_saves_template_and_learns(tiny_chat_gemma_dir, tmp_path):
    recipe = Recipe(
        name="t",
        task="chat",
        model=str(tiny_chat_gemma_dir),
        run_dir=str(tmp_path / "run"),
        data={"train": "unused"},
        train={"max_steps": 30, "lr": 1e-2, "batch_size": 2, "eval_every": 10, "method": "full"},
    )
    trained = train_chat(recipe, CONVERSATIONS, CONVERSATIONS, log=lambda *_: None)
    losses = [loss for _, loss in trained.result.loss_history]
    assert losses[-1] < losses[0] * 0.8  # the training loss falls clearly
    tok = load_model(str(trained.path)).tokenizer  # reload the output folder: the template came with it
    assert tok.chat_template == GEMMA_CHAT_TEMPLATE
    info = json.loads((trained.path / "medtune_model.json").read_text())
    assert info["task"] == "chat" and info["chat_template"] is True
    assert json.loads((trained.path / "metrics.json").read_text())["train_examples"] == 2
