"""The encoder-decoder (Marian) path: encoding, loss, a short training run and generation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from medtune.generate.engine import generate_texts
from medtune.models.adapters import attach_lora
from medtune.models.loading import MODEL_INFO_FILE, load_model
from medtune.pipeline import train_recipe
from medtune.recipes.loader import validate_recipe
from medtune.train.batching import IGNORE, collate, encode_translation_pairs
from medtune.train.loss import seq2seq_target_loss

MARIAN_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


@pytest.fixture(scope="module")
def marian(tiny_marian_dir):
    return load_model(str(tiny_marian_dir), dtype="float32")


def test_load_model_detects_seq2seq(marian):
    assert marian.is_seq2seq
    assert marian.model.config.model_type == "marian"
    assert marian.tokenizer.pad_token_id == marian.model.config.decoder_start_token_id


def test_encode_seq2seq_labels_are_the_target_ids(marian, demo_pairs):
    tok = marian.tokenizer
    examples = encode_translation_pairs(tok, demo_pairs[:4], seq2seq=True, max_length=128)
    for pair, ex in zip(demo_pairs[:4], examples, strict=True):
        assert ex.input_ids == tok(pair.src)["input_ids"]
        assert ex.labels == tok(text_target=pair.tgt)["input_ids"]
        assert ex.labels[-1] == tok.eos_token_id and IGNORE not in ex.labels
        assert ex.n_target == len(ex.labels)
        assert tok.decode(ex.labels, skip_special_tokens=True) == pair.tgt
    # truncation keeps the end-of-sequence token
    [short] = encode_translation_pairs(tok, demo_pairs[:1], seq2seq=True, max_length=5)
    assert len(short.input_ids) == len(short.labels) == 5 and short.labels[-1] == tok.eos_token_id


@pytest.mark.parametrize("with_lora", [False, True])
def test_seq2seq_target_loss_equals_model_loss(tiny_marian_dir, demo_pairs, with_lora):
    loaded = load_model(str(tiny_marian_dir), dtype="float32")
    model = loaded.model
    if with_lora:
        torch.manual_seed(0)
        model = attach_lora(model, 4, 8, 0.0, MARIAN_TARGETS)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0, 0.5)
    model.eval()
    examples = encode_translation_pairs(loaded.tokenizer, demo_pairs[:5], seq2seq=True, max_length=128)
    batch = collate(examples, loaded.tokenizer.pad_token_id, seq2seq=True)
    assert (batch["labels"] == IGNORE).any()  # labels of different lengths: padding is exercised

    with torch.no_grad():
        loss_sum, n = seq2seq_target_loss(model, batch)
        reference = model(**batch).loss

    assert n == sum(len(e.labels) for e in examples)
    assert float(loss_sum) == pytest.approx(float(reference) * n, rel=1e-4)
    assert float(reference) > 1.0


def _write_pairs(path: Path, pairs) -> Path:
    lines = [json.dumps({"en": p.src, "es": p.tgt}, ensure_ascii=False) for p in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def marian_trained(tiny_marian_dir, demo_pairs, tmp_path_factory) -> Path:
    """Fine-tune the tiny Marian for 30 steps on 32 pairs (4 more for dev, 4 for test)."""
    work = tmp_path_factory.mktemp("marian-run")
    data = _write_pairs(work / "pairs.jsonl", demo_pairs[:40])
    recipe = validate_recipe(
        {
            "name": "tiny-marian",
            "task": "translation",
            "model": str(tiny_marian_dir),
            "run_dir": str(work / "run"),
            "data": {"train": str(data), "split": "random", "test_size": 0.1, "dev_size": 0.1},
            "train": {
                "method": "full",
                "max_steps": 30,
                "batch_size": 8,
                "lr": 1e-3,
                "warmup_ratio": 0.0,
                "eval_every": 10,
                "max_length": 96,
            },
        }
    )
    return train_recipe(recipe, log=lambda _: None)


def test_marian_training_lowers_the_loss(marian_trained):
    metrics = json.loads((marian_trained / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["train_examples"] == 32 and metrics["dev_examples"] == 4
    losses = [loss for _, loss in metrics["loss_history"]]
    assert len(losses) == 30
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3
    dev = [loss for _, loss in metrics["dev_history"]]
    assert [s for s, _ in metrics["dev_history"]] == [10, 20, 30]
    assert dev[-1] < dev[0]
    info = json.loads((marian_trained / MODEL_INFO_FILE).read_text(encoding="utf-8"))
    assert info["seq2seq"] is True and info["adapter"] is False
    assert (marian_trained / "model.safetensors").is_file()


def test_marian_lora_trains(tiny_marian_dir, demo_pairs, tmp_path):
    from medtune.train.loop import LoopConfig, train_loop

    loaded = load_model(str(tiny_marian_dir), dtype="float32")
    model = attach_lora(loaded.model, 8, 16, 0.0, MARIAN_TARGETS)
    examples = encode_translation_pairs(loaded.tokenizer, demo_pairs[:16], seq2seq=True, max_length=96)
    cfg = LoopConfig(batch_size=8, grad_accum=1, lr=1e-2, seed=0, max_steps=10, warmup_ratio=0.0)
    result = train_loop(model, examples, [], cfg, loaded.tokenizer.pad_token_id, True, tmp_path, log=lambda _: None)
    losses = [loss for _, loss in result.loss_history]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("which", ["random", "trained"])
def test_generate_texts_on_marian_keeps_the_input_order(which, tiny_marian_dir, marian_trained, demo_pairs):
    loaded = load_model(str(tiny_marian_dir if which == "random" else marian_trained), dtype="float32")
    sources = [p.src for p in demo_pairs[40:46]]
    assert len({len(s) for s in sources}) == len(sources)  # different lengths, so sorting reorders

    batched = generate_texts(loaded.model, loaded.tokenizer, sources, batch_size=4, max_new_tokens=12, progress=None)
    one_by_one = [
        generate_texts(loaded.model, loaded.tokenizer, [s], batch_size=1, max_new_tokens=12, progress=None)[0]
        for s in sources
    ]

    assert isinstance(batched, list) and len(batched) == len(sources)
    assert all(isinstance(t, str) for t in batched)
    assert batched == one_by_one
    if which == "trained":
        assert all(batched)  # a trained model writes something for every sentence
    assert loaded.tokenizer.padding_side == "right"  # restored after generation
