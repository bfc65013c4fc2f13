"""rlhf_update: direction from the first call, the loss against a hand computation, clipping, baseline, KL."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pytest
import torch
from rlhf_oracle import SOURCE, TRANSLATION, translation_logp

from medtune.errors import MedtuneError
from medtune.feedback import rlhf_update
from medtune.feedback.rlhf import rlhf_state


def _gemma(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def _marian(folder):
    from transformers import MarianMTModel, MarianTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MarianMTModel.from_pretrained(folder), MarianTokenizer.from_pretrained(folder)


@pytest.fixture(params=["gemma", "marian"])
def fresh(request, tiny_gemma_dir, tiny_marian_dir):
    """A loader of fresh copies of one tiny model: (model, tokenizer)."""
    if request.param == "gemma":
        return lambda: _gemma(tiny_gemma_dir)
    return lambda: _marian(tiny_marian_dir)


@pytest.mark.parametrize("score", [0.9, 0.1])
def test_first_call_moves_the_translation_in_the_direction_of_its_reward(fresh, score):
    model, tokenizer = fresh()
    before, n = translation_logp(model, tokenizer)
    loss = rlhf_update(model, SOURCE, TRANSLATION, score, torch.optim.Adam(model.parameters(), lr=1e-3), tokenizer)
    after, _ = translation_logp(model, tokenizer)
    # the hand computation: -(score - 0.5) x mean per-token log-prob, the reference's value before the step
    assert loss == pytest.approx(-(score - 0.5) * before / n, rel=1e-5)
    assert (after > before) if score > 0.5 else (after < before)


def test_the_issue_example_with_marian_and_no_tokenizer(tiny_marian_dir):
    from torch.optim import Adam
    from transformers import MarianMTModel, MarianTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = MarianTokenizer.from_pretrained(tiny_marian_dir)
    model = MarianMTModel.from_pretrained(tiny_marian_dir)
    optimizer = Adam(model.parameters(), lr=5e-6)
    before, _ = translation_logp(model, tokenizer)
    loss = rlhf_update(
        model, "The patient needs urgent attention.", "El paciente necesita atención urgente.", 0.9, optimizer
    )
    assert isinstance(loss, float) and loss > 0  # -(0.4) x a negative log-prob
    assert translation_logp(model, tokenizer)[0] > before
    assert rlhf_state(model).tokenizer is not None  # loaded once from name_or_path, kept


def test_a_medtune_model_folder(tmp_path, tiny_gemma_dir):
    from medtune.models.loading import MODEL_INFO_FILE, load_model

    folder = tmp_path / "model"
    shutil.copytree(tiny_gemma_dir, folder)
    info = {"base_model": str(tiny_gemma_dir), "task": "translation", "method": "full", "adapter": False}
    (folder / MODEL_INFO_FILE).write_text(json.dumps(info), encoding="utf-8")
    loaded = load_model(str(folder), dtype="float32", device="cpu", log=lambda _: None)
    tokenizer = loaded.tokenizer
    optimizer = torch.optim.Adam(loaded.model.parameters(), lr=1e-3)
    start, _ = translation_logp(loaded.model, tokenizer)
    rlhf_update(loaded, SOURCE, TRANSLATION, 1.0, optimizer)  # the LoadedModel itself: its own tokenizer
    middle, _ = translation_logp(loaded.model, tokenizer)
    rlhf_update(loaded.model, SOURCE, TRANSLATION, 1.0, optimizer)  # the bare model: tokenizer from name_or_path
    assert start < middle < translation_logp(loaded.model, tokenizer)[0]
    assert rlhf_state(loaded).updates == 2  # one state for the model, however it was passed


def test_a_negative_advantage_update_is_bounded_by_the_clip(tiny_gemma_dir):
    model, tokenizer = _gemma(tiny_gemma_dir)
    logp, n = translation_logp(model, tokenizer)
    assert logp / n < -1  # the random tiny model: about -6 nats per token
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = rlhf_update(model, SOURCE, TRANSLATION, 0.1, optimizer, tokenizer, clip=1.0)
    assert loss == pytest.approx(-(0.5 - 0.1) * 1.0)  # -(A) x the floor -1, A = -0.4: the lowest it can be
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # below the floor: no push
    # a positive advantage is never clipped
    rlhf_update(model, SOURCE, TRANSLATION, 0.9, torch.optim.SGD(model.parameters(), lr=0.1), tokenizer, clip=1.0)
    assert translation_logp(model, tokenizer)[0] > logp


def test_the_running_baseline(tiny_gemma_dir):
    model, tokenizer = _gemma(tiny_gemma_dir)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    rlhf_update(model, SOURCE, TRANSLATION, 0.9, optimizer, tokenizer)
    assert rlhf_state(model).baseline == pytest.approx(0.9 * 0.5 + 0.1 * 0.9)  # 0.54
    logp, n = translation_logp(model, tokenizer)
    loss = rlhf_update(
        model, SOURCE, TRANSLATION, 0.2, optimizer, tokenizer, baseline=0.0
    )  # ignored after the first call
    assert loss == pytest.approx(-(0.2 - 0.54) * logp / n, rel=1e-5)
    assert rlhf_state(model).baseline == pytest.approx(0.9 * 0.54 + 0.1 * 0.2)
    assert rlhf_state(model).updates == 2

    fixed, _ = _gemma(tiny_gemma_dir)
    opt = torch.optim.SGD(fixed.parameters(), lr=0.05)
    for score in (1.0, 0.0):
        rlhf_update(fixed, SOURCE, TRANSLATION, score, opt, tokenizer, baseline=0.3, baseline_decay=1.0)
    assert rlhf_state(fixed).baseline == 0.3


def _k3(ref: float, policy: float, n: int) -> float:
    d = (ref - policy) / n
    return math.exp(d) - d - 1


def test_kl_penalty_with_a_plain_model_keeps_a_frozen_copy(fresh):
    model, tokenizer = fresh()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    start, n = translation_logp(model, tokenizer)
    loss = rlhf_update(model, SOURCE, TRANSLATION, 0.9, optimizer, tokenizer, kl_coef=0.5)
    assert loss == pytest.approx(-0.4 * start / n, rel=1e-5)  # policy = reference: KL 0 at the first call
    reference = rlhf_state(model).reference
    original, _ = fresh()
    copied, starting = reference.state_dict(), original.state_dict()
    assert copied.keys() == starting.keys() and all(torch.equal(copied[k], starting[k]) for k in copied)
    assert not any(p.requires_grad for p in reference.parameters())
    now, _ = translation_logp(model, tokenizer)
    loss = rlhf_update(model, SOURCE, TRANSLATION, 0.9, optimizer, tokenizer, kl_coef=0.5)
    baseline = 0.9 * 0.5 + 0.1 * 0.9
    expected = -(0.9 - baseline) * now / n + 0.5 * _k3(start, now, n)
    assert _k3(start, now, n) > 0
    assert loss == pytest.approx(expected, rel=1e-4)


def test_kl_penalty_with_lora_uses_the_disabled_adapter(tiny_gemma_dir):
    from peft import LoraConfig, get_peft_model

    base, tokenizer = _gemma(tiny_gemma_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=2.0)
    start, n = translation_logp(model, tokenizer)
    for _ in range(3):
        rlhf_update(model, SOURCE, TRANSLATION, 1.0, optimizer, tokenizer, kl_coef=1.0)
    assert rlhf_state(model).reference is None  # no copy: the adapter disabled is the reference
    with model.disable_adapter():
        assert translation_logp(model, tokenizer)[0] == pytest.approx(start, rel=1e-6)  # the base's log-prob
    plain, _ = _gemma(tiny_gemma_dir)
    assert translation_logp(plain, tokenizer)[0] == pytest.approx(start, rel=1e-6)
    now, _ = translation_logp(model, tokenizer)
    assert now > start
    baseline = rlhf_state(model).baseline
    loss = rlhf_update(model, SOURCE, TRANSLATION, 1.0, optimizer, tokenizer, kl_coef=1.0)
    assert loss == pytest.approx(-(1.0 - baseline) * now / n + _k3(start, now, n), rel=1e-4)


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1, "0.9", True, None])
def test_bad_feedback_is_refused_naming_the_argument(tiny_gemma_dir, bad):
    model, tokenizer = _gemma(tiny_gemma_dir)
    with pytest.raises(MedtuneError, match=r"rlhf_update: feedback=.* must be a number in \[0, 1\]"):
        rlhf_update(model, SOURCE, TRANSLATION, bad, torch.optim.SGD(model.parameters(), lr=0.1), tokenizer)
    assert rlhf_state(model) is None  # nothing was done


def test_bad_options_are_refused(tiny_gemma_dir):
    model, tokenizer = _gemma(tiny_gemma_dir)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(MedtuneError, match="kl_coef=-1"):
        rlhf_update(model, SOURCE, TRANSLATION, 0.5, optimizer, tokenizer, kl_coef=-1)
    with pytest.raises(MedtuneError, match="baseline=2"):
        rlhf_update(model, SOURCE, TRANSLATION, 0.5, optimizer, tokenizer, baseline=2)
    with pytest.raises(MedtuneError, match="translation must be a non-empty string"):
        rlhf_update(model, SOURCE, " ", 0.5, optimizer, tokenizer)
