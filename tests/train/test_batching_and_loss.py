"""Label masks, batching, the target-only loss and the training loop's numerical guarantees."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medtune.data.prompts import translation_prompt, translation_target
from medtune.models.adapters import attach_lora
from medtune.models.loading import load_model
from medtune.models.scoring import causal_target_loss
from medtune.train import loop
from medtune.train.batching import (
    IGNORE,
    Example,
    collate,
    encode_causal,
    encode_translation_pairs,
    plan_batches,
)
from medtune.train.loop import LoopConfig, TrainingInterrupted, train_loop

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _quiet(_message: str) -> None:
    pass


@pytest.fixture
def examples(tiny_tokenizer, demo_pairs) -> list[Example]:
    return encode_translation_pairs(tiny_tokenizer, demo_pairs[:24], seq2seq=False, max_length=192)


# --- label masks and collation -------------------------------------------------------------


def test_encode_causal_labels_only_the_target(tiny_tokenizer):
    prompt = translation_prompt("Keep the wound clean.", "en", "es")
    target = translation_target("Mantenga la herida limpia.")
    prompt_ids = tiny_tokenizer(prompt)["input_ids"]
    target_ids = tiny_tokenizer(target, add_special_tokens=False)["input_ids"]
    bos = tiny_tokenizer.bos_token_id

    ex = encode_causal(tiny_tokenizer, prompt, target, max_length=256)

    assert ex.input_ids == prompt_ids + target_ids
    assert ex.labels == [IGNORE] * len(prompt_ids) + target_ids
    assert ex.input_ids[0] == bos and ex.input_ids.count(bos) == 1
    assert ex.labels[0] == IGNORE  # the bos is part of the prompt
    assert ex.n_target == len(target_ids)
    assert tiny_tokenizer.decode([t for t in ex.labels if t != IGNORE]) == " Mantenga la herida limpia.\n"


def test_encode_causal_cuts_long_targets_at_the_end(tiny_tokenizer):
    prompt = translation_prompt("Take one tablet.")
    n_prompt = len(tiny_tokenizer(prompt)["input_ids"])
    target = translation_target("Tome una tableta por la mañana y otra por la noche con agua.")
    ex = encode_causal(tiny_tokenizer, prompt, target, max_length=n_prompt + 3)
    full = tiny_tokenizer(target, add_special_tokens=False)["input_ids"]
    assert len(ex.input_ids) == n_prompt + 3
    assert ex.labels[n_prompt:] == full[:3]
    # a prompt longer than max_length still keeps one target token to learn from
    ex = encode_causal(tiny_tokenizer, prompt, target, max_length=2)
    assert ex.n_target == 1 and ex.labels[-1] == full[0]


def test_encode_translation_pairs_uses_the_eval_prompt(tiny_tokenizer, demo_pairs):
    pair = demo_pairs[0]
    [ex] = encode_translation_pairs(tiny_tokenizer, [pair], seq2seq=False, max_length=256, src_lang="en", tgt_lang="es")
    expected = encode_causal(tiny_tokenizer, translation_prompt(pair.src), translation_target(pair.tgt), 256)
    assert ex == expected
    assert tiny_tokenizer.decode(ex.input_ids, skip_special_tokens=True) == (
        f"English: {pair.src}\nSpanish: {pair.tgt}\n"
    )


def test_collate_pads_inputs_and_masks_labels():
    a = Example([2, 10, 11, 12, 13], [IGNORE, IGNORE, IGNORE, 12, 13])
    b = Example([2, 20, 21], [IGNORE, IGNORE, 21])
    batch = collate([a, b], pad_id=0, seq2seq=False)
    assert batch["input_ids"].tolist() == [[2, 10, 11, 12, 13], [2, 20, 21, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, IGNORE, IGNORE, 12, 13], [IGNORE, IGNORE, 21, IGNORE, IGNORE]]


def test_collate_seq2seq_pads_labels_to_their_own_width():
    a = Example([5, 6, 1], [7, 1])
    b = Example([5, 1], [7, 8, 9, 1])
    batch = collate([a, b], pad_id=0, seq2seq=True)
    assert batch["input_ids"].tolist() == [[5, 6, 1], [5, 1, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[7, 1, IGNORE, IGNORE], [7, 8, 9, 1]]


# --- the target-only loss ----------------------------------------------------------------------


def _reference_loss(model, batch) -> tuple[float, int]:
    """The textbook causal-LM loss: full logits, shift by one, mean over labelled tokens."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    shifted, targets = logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1)
    keep = targets != IGNORE
    return float(F.cross_entropy(shifted[keep].float(), targets[keep])), int(keep.sum())


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_causal_target_loss_equals_shifted_cross_entropy(tiny_gemma_dir, tiny_tokenizer, examples, softcap):
    model = load_model(str(tiny_gemma_dir), dtype="float32").model.eval()
    model.config.final_logit_softcapping = softcap
    batch = collate(examples[:6], tiny_tokenizer.pad_token_id, seq2seq=False)
    assert (batch["attention_mask"] == 0).any()  # padding is present, so masking is exercised

    with torch.no_grad():
        loss_sum, n = causal_target_loss(model, batch)
    ref_mean, ref_n = _reference_loss(model, batch)

    assert n == ref_n == sum(e.n_target for e in examples[:6])
    assert float(loss_sum) / n == pytest.approx(ref_mean, abs=1e-5)
    assert ref_mean > 1.0  # a random model: the comparison is not between two zeros


def test_causal_target_loss_sees_lora_adapters(tiny_gemma_dir, tiny_tokenizer, examples):
    torch.manual_seed(0)
    model = attach_lora(load_model(str(tiny_gemma_dir), dtype="float32").model, 4, 8, 0.0, LORA_TARGETS).eval()
    with torch.no_grad():  # non-zero B, so the adapters change the output
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    batch = collate(examples[:4], tiny_tokenizer.pad_token_id, seq2seq=False)
    with torch.no_grad():
        loss_sum, n = causal_target_loss(model, batch)
        with model.disable_adapter():
            base_sum, _ = causal_target_loss(model, batch)
    ref_mean, _ = _reference_loss(model, batch)
    assert float(loss_sum) / n == pytest.approx(ref_mean, abs=1e-5)
    assert abs(float(base_sum) - float(loss_sum)) / n > 1e-3


# --- the training loop ----------------------------------------------------------------------


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _train(model_dir, train, dev, ckpt, lora_seed=0, resume=False, dropout=0.0, checkpointing=False, **overrides):
    """Fresh tiny Gemma + LoRA, trained by train_loop; returns (result, model)."""
    loaded = load_model(str(model_dir), dtype="float32")
    if checkpointing:
        loaded.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(lora_seed)
    model = attach_lora(loaded.model, 4, 8, dropout, LORA_TARGETS)
    cfg = dict(batch_size=8, grad_accum=1, lr=1e-2, seed=7, max_steps=4, warmup_ratio=0.0, eval_every=2, save_every=50)
    cfg.update(overrides)
    pad = loaded.tokenizer.pad_token_id
    result = train_loop(model, train, dev, LoopConfig(**cfg), pad, False, ckpt, resume=resume, log=_quiet)
    return result, model


def _losses(result) -> list[float]:
    return [loss for _, loss in result.loss_history]


def test_gradient_accumulation_matches_one_large_batch(tiny_gemma_dir, examples, tmp_path):
    train, dev = examples[:16], examples[16:20]
    big, big_model = _train(tiny_gemma_dir, train, dev, tmp_path / "a", batch_size=8, grad_accum=1)
    acc, acc_model = _train(tiny_gemma_dir, train, dev, tmp_path / "b", batch_size=4, grad_accum=2)

    assert [s for s, _ in big.loss_history] == [s for s, _ in acc.loss_history] == [1, 2, 3, 4]
    assert _losses(acc) == pytest.approx(_losses(big), rel=1e-4)
    assert acc.target_tokens == big.target_tokens
    assert acc.dev_loss == pytest.approx(big.dev_loss, rel=1e-4)
    big_w, acc_w = _trainable(big_model), _trainable(acc_model)
    assert big_w.keys() == acc_w.keys()
    for name in big_w:
        torch.testing.assert_close(acc_w[name], big_w[name], rtol=1e-4, atol=1e-6, msg=name)
    assert _losses(big)[-1] < _losses(big)[0]  # lr 1e-2: the runs really moved


def test_identical_runs_are_identical(tiny_gemma_dir, examples, tmp_path):
    train, dev = examples[:16], examples[16:20]
    first, first_model = _train(tiny_gemma_dir, train, dev, tmp_path / "a", max_steps=3)
    second, second_model = _train(tiny_gemma_dir, train, dev, tmp_path / "b", max_steps=3)
    assert first.loss_history == second.loss_history
    assert first.dev_history == second.dev_history
    a, b = _trainable(first_model), _trainable(second_model)
    assert all(torch.equal(a[n], b[n]) for n in a)


# LoRA dropout and activation checkpointing on: the dropout masks of the steps after a resume (and their
# recomputation in the backward pass) depend on the random state the checkpoint restores.
RNG_HEAVY = dict(dropout=0.3, checkpointing=True)


@pytest.mark.parametrize(
    "stop_after, eval_every",
    [(4, 2), (5, 4)],  # interrupted on a logging boundary, and in the middle of the last window
)
def test_resumed_run_matches_uninterrupted_run(tiny_gemma_dir, examples, tmp_path, stop_after, eval_every):
    train, dev = examples[:16], examples[16:20]
    settings = dict(max_steps=6, eval_every=eval_every, **RNG_HEAVY)
    full, full_model = _train(tiny_gemma_dir, train, dev, tmp_path / "full", **settings)

    ckpt = tmp_path / "interrupted"
    with pytest.raises(TrainingInterrupted, match=f"after step {stop_after} of 6"):
        _train(tiny_gemma_dir, train, dev, ckpt, stop_after=stop_after, **settings)
    state = torch.load(ckpt / "last" / "state.pt", weights_only=False)
    assert state["step"] == stop_after
    assert set(state["rng"]) >= {"python", "numpy", "torch"}

    # a different LoRA init: the resumed weights must come from the checkpoint, not the seed
    resumed, resumed_model = _train(tiny_gemma_dir, train, dev, ckpt, lora_seed=123, resume=True, **settings)

    assert resumed.steps == full.steps == 6
    assert [s for s, _ in resumed.loss_history] == [1, 2, 3, 4, 5, 6]
    assert _losses(resumed) == pytest.approx(_losses(full), abs=1e-6)
    assert [s for s, _ in resumed.dev_history] == [s for s, _ in full.dev_history]
    assert [d for _, d in resumed.dev_history] == pytest.approx([d for _, d in full.dev_history], abs=1e-6)
    assert resumed.target_tokens == full.target_tokens
    assert resumed.train_loss == pytest.approx(full.train_loss, abs=1e-6)
    a, b = _trainable(full_model), _trainable(resumed_model)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)


def test_without_the_rng_restore_a_resumed_run_would_differ(tiny_gemma_dir, examples, tmp_path, monkeypatch):
    """The same resume with the checkpoint's random state ignored: the dropout masks after step 4 change."""
    train, dev = examples[:16], examples[16:20]
    settings = dict(max_steps=6, eval_every=2, **RNG_HEAVY)
    full, _ = _train(tiny_gemma_dir, train, dev, tmp_path / "full", **settings)
    ckpt = tmp_path / "interrupted"
    with pytest.raises(TrainingInterrupted):
        _train(tiny_gemma_dir, train, dev, ckpt, stop_after=4, **settings)
    monkeypatch.setattr(loop, "set_rng_state", lambda state: None)
    resumed, _ = _train(tiny_gemma_dir, train, dev, ckpt, resume=True, **settings)
    assert _losses(resumed)[:4] == pytest.approx(_losses(full)[:4], abs=1e-6)  # restored from the checkpoint
    assert abs(_losses(resumed)[4] - _losses(full)[4]) > 1e-4


def test_rng_state_round_trip_covers_python_numpy_and_torch():
    state = loop.rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    loop.set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected


def test_resume_without_checkpoint_starts_from_scratch(tiny_gemma_dir, examples, tmp_path):
    train, dev = examples[:16], examples[16:20]
    fresh, _ = _train(tiny_gemma_dir, train, dev, tmp_path / "a", max_steps=2)
    resumed, _ = _train(tiny_gemma_dir, train, dev, tmp_path / "b", resume=True, max_steps=2)
    assert resumed.loss_history == fresh.loss_history


# --- batch planning -----------------------------------------------------------------------


def _padding(examples: list[Example], batches: list[list[int]]) -> int:
    return sum(max(examples[i].length for i in b) * len(b) - sum(examples[i].length for i in b) for b in batches)


@pytest.fixture
def varied() -> list[Example]:
    rng = random.Random(0)
    return [Example(list(range(n)), list(range(n))) for n in (rng.randint(5, 120) for _ in range(203))]


def test_plan_batches_is_a_permutation(varied):
    batches = plan_batches(varied, batch_size=8, seed=3, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(varied)))
    assert sorted(len(b) for b in batches) == [3] + [8] * 25  # 203 = 25 * 8 + 3


def test_plan_batches_is_fixed_by_seed_and_epoch(varied):
    plan = plan_batches(varied, 8, seed=3, epoch=0)
    assert plan_batches(varied, 8, seed=3, epoch=0) == plan
    assert plan_batches(varied, 8, seed=3, epoch=1) != plan
    assert plan_batches(varied, 8, seed=4, epoch=0) != plan


def test_plan_batches_pads_less_than_random_batches(varied):
    planned = _padding(varied, plan_batches(varied, 8, seed=3, epoch=0))
    randoms = []
    for seed in range(5):
        order = list(range(len(varied)))
        random.Random(seed).shuffle(order)
        randoms.append(_padding(varied, [order[i : i + 8] for i in range(0, len(order), 8)]))
    assert planned < 0.25 * min(randoms)
