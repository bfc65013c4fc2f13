"""The preference objectives: DPO against TRL (the oracle) and hand-computed values, ln 2 at the first
step, KTO by hand and 0.5 at the first step, the reference without a second copy, precomputed reference
log-probs, and the loop with DPO (accumulation equivalence, resume, the loss going down)."""

from __future__ import annotations

import math

import pytest
import torch

from medtune.data.examples import IGNORE, Example
from medtune.errors import MedtuneError
from medtune.models.adapters import attach_lora
from medtune.models.loading import load_model
from medtune.train.batching import encode_causal, encode_seq2seq
from medtune.train.loop import LoopConfig, TrainingInterrupted, train_loop
from medtune.train.loss import sequence_logps
from medtune.train.objectives import (
    DPOObjective,
    KTOExample,
    KTOObjective,
    PairExample,
    SFTObjective,
    batch_reference_logps,
    collate_pairs,
    disable_dropout,
    dpo_loss,
    kto_loss,
    mismatched_examples,
    reference_logps,
    with_reference_logps,
)

GEMMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MARIAN_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
LN2 = math.log(2)


def _quiet(_message: str) -> None:
    pass


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _perturb_lora(model, seed: int = 1, scale: float = 0.3) -> None:
    """A non-zero B, so that the policy differs from the reference (adapter disabled)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)


def _causal_pairs(tokenizer, demo_pairs, n: int) -> list[PairExample]:
    """Chosen: the reference translation; rejected: the translation of another sentence."""
    pairs = []
    for i in range(n):
        prompt = f"English: {demo_pairs[i].src}\nSpanish:"
        chosen = encode_causal(tokenizer, prompt, f" {demo_pairs[i].tgt}\n", 192)
        rejected = encode_causal(tokenizer, prompt, f" {demo_pairs[i + n].tgt}\n", 192)
        pairs.append(PairExample(chosen, rejected))
    return pairs


def _marian_pairs(tokenizer, demo_pairs, n: int) -> list[PairExample]:
    return [
        PairExample(
            encode_seq2seq(tokenizer, demo_pairs[i].src, demo_pairs[i].tgt, 128),
            encode_seq2seq(tokenizer, demo_pairs[i].src, demo_pairs[i + n].tgt, 128),
        )
        for i in range(n)
    ]


@pytest.fixture
def gemma(tiny_gemma_dir):
    """The tiny Gemma (float32) with a fresh LoRA adapter (B = 0), and its tokenizer."""
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    torch.manual_seed(0)
    return attach_lora(loaded.model, 4, 8, 0.0, GEMMA_TARGETS), loaded.tokenizer


@pytest.fixture
def marian(tiny_marian_dir):
    """The tiny Marian (float32, dropout off as for preference training) with a fresh LoRA adapter."""
    loaded = load_model(str(tiny_marian_dir), dtype="float32")
    torch.manual_seed(0)
    model = attach_lora(loaded.model, 4, 8, 0.0, MARIAN_TARGETS)
    assert loaded.model.config.dropout > 0  # Marian's default: disable_dropout must do the work
    disable_dropout(model)
    return model, loaded.tokenizer


# --- pure losses, by hand -------------------------------------------------------------------------


def test_dpo_loss_equals_hand_computed_values():
    policy_chosen, policy_rejected = torch.tensor([-1.0, -5.0]), torch.tensor([-3.0, -4.0])
    ref_chosen, ref_rejected = torch.tensor([-2.0, -5.0]), torch.tensor([-2.0, -4.0])
    losses, chosen, rejected = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.5)
    # pair 0: log-ratios +1 and -1, so beta x margin = 0.5 x 2 = 1: -log sigma(1) = log(1 + e^-1)
    # pair 1: policy == reference: -log sigma(0) = ln 2
    assert losses.tolist() == pytest.approx([math.log(1 + math.exp(-1)), LN2], rel=1e-7)
    assert chosen.tolist() == [0.5, 0.0] and rejected.tolist() == [-0.5, 0.0]


def test_kto_loss_equals_hand_computed_values():
    policy = torch.tensor([-1.0, -4.0, -2.0], dtype=torch.float64)
    ref = torch.tensor([-2.0, -3.0, -2.0], dtype=torch.float64)
    desirable = torch.tensor([True, False, True])
    # mismatched log-ratios 0.5, 0.0, 0.4: z = 0.3
    policy_mm = torch.tensor([-5.0, -6.0, -6.6], dtype=torch.float64)
    ref_mm = torch.tensor([-5.5, -6.0, -7.0], dtype=torch.float64)
    losses, z = kto_loss(policy, ref, desirable, policy_mm, ref_mm, 0.5, desirable_weight=2.0, undesirable_weight=0.5)
    assert float(z) == pytest.approx(0.3, rel=1e-12)
    expected = [
        2.0 * (1 - _sigmoid(0.5 * (1.0 - 0.3))),  # desirable, log-ratio +1
        0.5 * (1 - _sigmoid(0.5 * (0.3 - (-1.0)))),  # undesirable, log-ratio -1
        2.0 * (1 - _sigmoid(0.5 * (0.0 - 0.3))),  # desirable, log-ratio 0
    ]
    assert losses.tolist() == pytest.approx(expected, rel=1e-12)
    # a negative mean mismatched log-ratio is clamped: z = 0
    _, z = kto_loss(policy, ref, desirable, ref_mm - 1, ref_mm, 0.5)
    assert float(z) == 0.0


# --- batches -------------------------------------------------------------------------------------


def test_collate_pairs_stacks_chosen_then_rejected_and_carries_reference():
    a = PairExample(Example([2, 5, 6], [IGNORE, 5, 6]), Example([2, 5, 7, 8], [IGNORE, 5, 7, 8]), (-1.0, -2.0))
    b = PairExample(Example([2, 9], [IGNORE, 9]), Example([2, 4, 4], [IGNORE, 4, 4]), (-3.0, -4.0))
    batch = collate_pairs([a, b], pad_id=0, seq2seq=False)
    assert batch["input_ids"].tolist() == [[2, 5, 6, 0], [2, 9, 0, 0], [2, 5, 7, 8], [2, 4, 4, 0]]
    assert batch["labels"][3].tolist() == [IGNORE, 4, 4, IGNORE]
    assert batch["ref_logps"].tolist() == [-1.0, -3.0, -2.0, -4.0]
    with pytest.raises(MedtuneError, match="reference_logps"):
        collate_pairs([a, PairExample(b.chosen, b.rejected)], pad_id=0, seq2seq=False)
    seq2seq = collate_pairs([PairExample(Example([5, 1], [7, 1]), Example([5, 1], [7, 8, 9, 1]))], 0, seq2seq=True)
    assert seq2seq["labels"].tolist() == [[7, 1, IGNORE, IGNORE], [7, 8, 9, 1]]
    assert "ref_logps" not in seq2seq


def test_mismatched_examples_rotate_answers_by_one():
    a = Example([2, 10, 11, 12], [IGNORE, IGNORE, 11, 12])
    b = Example([2, 20, 21, 22, 23], [IGNORE, IGNORE, IGNORE, 22, 23])
    c = Example([2, 30, 31], [IGNORE, IGNORE, 31])
    # each prompt gets the previous example's answer (the first gets the last's)
    assert mismatched_examples([a, b, c], seq2seq=False) == [
        Example([2, 10, 31], [IGNORE, IGNORE, 31]),
        Example([2, 20, 21, 11, 12], [IGNORE, IGNORE, IGNORE, 11, 12]),
        Example([2, 30, 22, 23], [IGNORE, IGNORE, 22, 23]),
    ]
    src = [Example([5, 1], [7, 1]), Example([6, 6, 1], [8, 8, 1])]
    assert mismatched_examples(src, seq2seq=True) == [Example([5, 1], [8, 8, 1]), Example([6, 6, 1], [7, 1])]


# --- DPO against TRL, by hand, and ln 2 ------------------------------------------------------------


def test_dpo_loss_and_gradient_equal_trls_on_the_same_tiny_model_and_batch(tiny_gemma_dir, demo_pairs, tmp_path):
    """TRL 1.16 as the oracle: ``DPOTrainer.compute_loss`` (sigmoid loss, reference = the PEFT adapter
    disabled, since TRL attaches the fresh adapter itself from ``peft_config``) on one collated batch,
    against DPOObjective on the same tokens of the same model object. TRL scores through its own fused
    LM head, medtune through its own. The model is float64, so the only rounding left is TRL's head,
    which computes in float32 whatever the model's dtype (trl/kernels/chunked_logprob.py): ~1e-6."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, Gemma3ForCausalLM
    from trl import DPOConfig, DPOTrainer

    # float64, so that the two bodies agree exactly and only the heads round differently
    base = Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float64)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_gemma_dir))
    rows = [
        {
            "prompt": f"English: {demo_pairs[i].src}\nSpanish:",
            "chosen": f" {demo_pairs[i].tgt}\n",
            "rejected": f" {demo_pairs[i + 4].tgt}\n",
        }
        for i in range(4)
    ]
    args = DPOConfig(
        output_dir=str(tmp_path),
        beta=0.3,
        per_device_train_batch_size=4,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        max_length=None,
        seed=0,
    )
    peft_config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=GEMMA_TARGETS, task_type="CAUSAL_LM")
    trainer = DPOTrainer(
        model=base,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    model = trainer.model
    assert "ref" not in model.peft_config  # a fresh adapter: TRL's reference is the adapter disabled, as ours
    _perturb_lora(model)
    model.train()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    trl_loss_tensor = trainer.compute_loss(model, batch)
    trl_loss_tensor.backward()
    trl_loss = float(trl_loss_tensor.detach())
    trl_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()

    # the same rows as medtune PairExamples: labels = the completion tokens (TRL's completion_mask)
    examples = []
    for ids, attention, completion in zip(
        batch["input_ids"], batch["attention_mask"], batch["completion_mask"], strict=True
    ):
        length = int(attention.sum())
        labels = torch.where(completion.bool(), ids, IGNORE)[:length]
        examples.append(Example(ids[:length].tolist(), labels.tolist()))
    pairs = [PairExample(c, r) for c, r in zip(examples[:4], examples[4:], strict=True)]
    objective = DPOObjective(beta=0.3)
    loss_sum, metrics = objective.loss(model, collate_pairs(pairs, tokenizer.pad_token_id, False), False)
    (loss_sum / 4).backward()

    assert trl_loss > 0.1 and abs(trl_loss - LN2) > 1e-3  # policy != reference
    assert float(loss_sum) / 4 == pytest.approx(trl_loss, rel=1e-5)
    trl_metrics = trainer._metrics["train"]
    assert metrics["reward_margin"][0] / 4 == pytest.approx(trl_metrics["rewards/margins"][0], rel=1e-5)
    assert metrics["chosen_reward"][0] / 4 == pytest.approx(trl_metrics["rewards/chosen"][0], rel=1e-5)
    assert metrics["reward_accuracy"][0] / 4 == trl_metrics["rewards/accuracies"][0]
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad.abs().max() > 1e-6, name
            # relative to the tensor's norm: TRL's float32 head rounds each element by ~1e-7 of the largest
            error = float((param.grad - trl_grads[name]).norm() / trl_grads[name].norm())
            assert error < 1e-5, (name, error)


def test_dpo_on_tiny_marian_equals_the_hand_computed_value(marian, demo_pairs):
    model, tokenizer = marian
    _perturb_lora(model)
    model.train()
    pairs = _marian_pairs(tokenizer, demo_pairs, 3)
    beta, sft_weight = 0.2, 0.5

    def hf_logp(example: Example) -> float:  # a plain HF forward: -(mean loss x target tokens)
        ids = torch.tensor([example.input_ids])
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([example.labels]))
        return -float(out.loss) * len(example.labels)

    with torch.no_grad():
        policy = [(hf_logp(p.chosen), hf_logp(p.rejected)) for p in pairs]
        with model.disable_adapter():
            ref = [(hf_logp(p.chosen), hf_logp(p.rejected)) for p in pairs]
    hand = 0.0
    for (pc, pr), (rc, rr), pair in zip(policy, ref, pairs, strict=True):
        hand += math.log(1 + math.exp(-beta * ((pc - rc) - (pr - rr))))  # -log sigma(beta x margin)
        hand += sft_weight * -pc / len(pair.chosen.labels)  # the SFT term: mean per-token NLL of chosen

    objective = DPOObjective(beta=beta, sft_weight=sft_weight)
    loss_sum, metrics = objective.loss(model, collate_pairs(pairs, tokenizer.pad_token_id, True), True)
    assert float(loss_sum) == pytest.approx(hand, rel=1e-5)
    margins = sum(beta * ((pc - rc) - (pr - rr)) for (pc, pr), (rc, rr) in zip(policy, ref, strict=True))
    assert metrics["reward_margin"][0] == pytest.approx(margins, rel=1e-4, abs=1e-4)  # float32 sums of ~100 terms
    assert model.training  # the reference pass restored the train mode


@pytest.fixture
def gemma_bf16(tiny_gemma_dir):
    """The tiny Gemma in bfloat16 with a fresh float32 LoRA adapter (LoRA training in bf16)."""
    loaded = load_model(str(tiny_gemma_dir), dtype="bfloat16")
    torch.manual_seed(0)
    return attach_lora(loaded.model, 4, 8, 0.0, GEMMA_TARGETS), loaded.tokenizer


@pytest.mark.parametrize("kind", ["gemma", "gemma_bf16", "marian"])
def test_dpo_first_step_is_ln2_when_the_policy_is_the_reference(kind, request, demo_pairs, tmp_path):
    model, tokenizer = request.getfixturevalue(kind)
    seq2seq = kind == "marian"
    pairs = (_marian_pairs if seq2seq else _causal_pairs)(tokenizer, demo_pairs, 4)
    objective = DPOObjective(beta=0.1)
    model.train()
    _, metrics = objective.loss(model, collate_pairs(pairs, tokenizer.pad_token_id, seq2seq), seq2seq)
    assert metrics["chosen_reward"] == (0.0, 4) and metrics["rejected_reward"] == (0.0, 4)  # exactly equal

    cfg = LoopConfig(batch_size=4, grad_accum=1, lr=1e-2, seed=0, max_steps=2, warmup_ratio=0.0, eval_every=50)
    result = train_loop(
        model, pairs, [], cfg, tokenizer.pad_token_id, seq2seq, tmp_path, log=_quiet, objective=objective
    )
    assert result.loss_history[0][1] == pytest.approx(LN2, abs=1e-7)
    step, first = result.metric_history[0]
    assert step == 1 and first == {
        "reward_margin": 0.0,
        "reward_accuracy": 0.0,
        "chosen_reward": 0.0,
        "rejected_reward": 0.0,
    }
    assert result.loss_history[1][1] < LN2  # one step later the policy has moved towards the chosen answers


@pytest.mark.parametrize("kind", ["gemma", "marian"])
def test_kto_first_step_is_one_half_with_unit_weights(kind, request, demo_pairs, tmp_path):
    model, tokenizer = request.getfixturevalue(kind)
    seq2seq = kind == "marian"
    pairs = (_marian_pairs if seq2seq else _causal_pairs)(tokenizer, demo_pairs, 3)
    items = [KTOExample(p.chosen, True) for p in pairs] + [KTOExample(p.rejected, False) for p in pairs]
    objective = KTOObjective(beta=0.1)
    model.train()
    loss_sum, metrics = objective.loss(model, objective.collate(items, tokenizer.pad_token_id, seq2seq), seq2seq)
    assert float(loss_sum) == pytest.approx(0.5 * len(items), abs=1e-6)
    assert metrics["kl"] == (0.0, 1) and metrics["chosen_reward"] == (0.0, 3)
    cfg = LoopConfig(batch_size=3, grad_accum=2, lr=1e-2, seed=0, max_steps=1, warmup_ratio=0.0, eval_every=50)
    pad = tokenizer.pad_token_id
    result = train_loop(model, items, [], cfg, pad, seq2seq, tmp_path, log=_quiet, objective=objective)
    assert result.loss_history == [(1, pytest.approx(0.5, abs=1e-6))]
    assert result.metric_history[0][1]["kl"] == 0.0


def test_kto_refuses_micro_batches_of_one(gemma, demo_pairs, tmp_path):
    model, tokenizer = gemma
    items = [KTOExample(p.chosen, True) for p in _causal_pairs(tokenizer, demo_pairs, 3)]
    with pytest.raises(MedtuneError, match="train.batch_size"):
        KTOObjective().collate(items[:1], tokenizer.pad_token_id, False)
    # micro-batches of 1; 3 examples in steps of 2 leave 1 over; a single dev example
    for batch_size, n_train, n_dev in ((1, 2, 0), (2, 3, 0), (2, 2, 1)):
        cfg = LoopConfig(batch_size=batch_size, grad_accum=1, lr=1e-2, seed=0, max_steps=1)
        train, dev = items[:n_train], items[n_train : n_train + n_dev]
        with pytest.raises(MedtuneError, match="at least 2 examples"):
            train_loop(model, train, dev, cfg, 0, False, tmp_path, log=_quiet, objective=KTOObjective())


# --- the reference model -------------------------------------------------------------------------


def test_adapter_disabled_gives_exactly_the_base_models_logps(tiny_gemma_dir, gemma, demo_pairs):
    from transformers import Gemma3ForCausalLM

    model, tokenizer = gemma
    _perturb_lora(model)
    model.train()
    batch = collate_pairs(_causal_pairs(tokenizer, demo_pairs, 3), tokenizer.pad_token_id, False)
    reference = batch_reference_logps(model, batch, seq2seq=False)
    base = Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32).eval()  # a separate plain copy
    with torch.no_grad():
        assert torch.equal(reference, sequence_logps(base, batch, seq2seq=False))
        assert (sequence_logps(model, batch, seq2seq=False) - reference).abs().min() > 1e-3  # the adapter matters
    assert not reference.requires_grad
    assert all(module.training for module in model.modules())  # train mode restored after the reference pass


def test_precomputed_reference_for_full_fine_tuning(tiny_gemma_dir, demo_pairs, tmp_path):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    model, tokenizer = loaded.model, loaded.tokenizer
    model.requires_grad_(True)
    pairs = _causal_pairs(tokenizer, demo_pairs, 4)
    with pytest.raises(MedtuneError, match="train.method=lora"):
        DPOObjective().loss(model, collate_pairs(pairs, tokenizer.pad_token_id, False), False)

    logps = reference_logps(model, pairs, tokenizer.pad_token_id, False, batch_size=3)
    assert logps.shape == (4, 2)
    with torch.no_grad():
        for pair, (chosen, rejected) in zip(pairs, logps.tolist(), strict=True):
            alone = sequence_logps(model, collate_pairs([pair], tokenizer.pad_token_id, False), False)
            assert alone.tolist() == pytest.approx([chosen, rejected], rel=1e-6)
    with_ref = with_reference_logps(pairs, logps)
    cfg = LoopConfig(batch_size=2, grad_accum=2, lr=1e-3, seed=0, max_steps=1, warmup_ratio=0.0)
    result = train_loop(
        model, with_ref, [], cfg, tokenizer.pad_token_id, False, tmp_path, log=_quiet, objective=DPOObjective()
    )
    assert result.loss_history[0][1] == pytest.approx(LN2, abs=1e-6)  # the policy starts as its reference


# --- the loop with DPO -----------------------------------------------------------------------------


def _dpo_run(model_dir, pairs, dev, ckpt, resume=False, **overrides):
    """Fresh tiny Gemma + LoRA trained with DPO (and an SFT term) by train_loop; returns (result, model)."""
    loaded = load_model(str(model_dir), dtype="float32")
    torch.manual_seed(0)
    model = attach_lora(loaded.model, 4, 8, 0.0, GEMMA_TARGETS)
    cfg = dict(batch_size=4, grad_accum=1, lr=1e-2, seed=3, max_steps=3, warmup_ratio=0.0, eval_every=2)
    cfg.update(overrides)
    objective = DPOObjective(beta=0.5, sft_weight=0.1)
    pad = loaded.tokenizer.pad_token_id
    result = train_loop(model, pairs, dev, LoopConfig(**cfg), pad, False, ckpt, resume, _quiet, objective)
    return result, model


def _trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_dpo_gradient_accumulation_matches_one_large_batch(tiny_gemma_dir, tiny_tokenizer, demo_pairs, tmp_path):
    pairs = _causal_pairs(tiny_tokenizer, demo_pairs, 10)
    train, dev = pairs[:8], pairs[8:]
    big, big_model = _dpo_run(tiny_gemma_dir, train, dev, tmp_path / "a", batch_size=4, grad_accum=1)
    acc, acc_model = _dpo_run(tiny_gemma_dir, train, dev, tmp_path / "b", batch_size=2, grad_accum=2)

    assert [loss for _, loss in acc.loss_history] == pytest.approx([loss for _, loss in big.loss_history], rel=1e-5)
    assert acc.target_tokens == big.target_tokens > sum(p.n_target for p in train)  # 3 steps of 4 pairs of 8
    for (step_a, fig_a), (step_b, fig_b) in zip(acc.metric_history, big.metric_history, strict=True):
        assert step_a == step_b and fig_a.keys() == fig_b.keys()
        assert list(fig_a.values()) == pytest.approx(list(fig_b.values()), rel=1e-4, abs=1e-6)
    assert "dev_reward_accuracy" in dict(acc.metric_history)[2]  # dev figures at evaluation steps
    assert acc.dev_loss == pytest.approx(big.dev_loss, rel=1e-5)
    a, b = _trainable(acc_model), _trainable(big_model)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)


def test_dpo_resume_restores_the_metric_history(tiny_gemma_dir, tiny_tokenizer, demo_pairs, tmp_path):
    pairs = _causal_pairs(tiny_tokenizer, demo_pairs, 8)
    whole, _ = _dpo_run(tiny_gemma_dir, pairs, [], tmp_path / "whole", max_steps=4, save_every=2)
    with pytest.raises(TrainingInterrupted):
        _dpo_run(tiny_gemma_dir, pairs, [], tmp_path / "cut", max_steps=4, save_every=50, stop_after=2)
    resumed, _ = _dpo_run(tiny_gemma_dir, pairs, [], tmp_path / "cut", max_steps=4, resume=True)
    assert [step for step, _ in resumed.metric_history] == [1, 2, 3, 4]
    assert resumed.loss_history == pytest.approx(whole.loss_history, rel=1e-6)
    for (_, got), (_, want) in zip(resumed.metric_history, whole.metric_history, strict=True):
        assert list(got.values()) == pytest.approx(list(want.values()), rel=1e-5, abs=1e-7)
    assert "metric_history" in resumed.to_dict()


def test_dpo_loss_goes_down_on_an_easy_preference(tiny_gemma_dir, tiny_tokenizer, demo_pairs, tmp_path):
    # chosen: the translation; rejected: the same words reversed (easy to tell apart)
    pairs = []
    for pair in demo_pairs[:8]:
        prompt = f"English: {pair.src}\nSpanish:"
        reversed_words = " ".join(reversed(pair.tgt.split()))
        pairs.append(
            PairExample(
                encode_causal(tiny_tokenizer, prompt, f" {pair.tgt}\n", 192),
                encode_causal(tiny_tokenizer, prompt, f" {reversed_words}\n", 192),
            )
        )
    result, _ = _dpo_run(tiny_gemma_dir, pairs, [], tmp_path, max_steps=8, lr=2e-2)
    losses = [loss for _, loss in result.loss_history]
    assert losses[-1] < losses[0] - 0.05
    last = result.metric_history[-1][1]
    assert last["reward_margin"] > 0 and last["reward_accuracy"] >= 0.75


def test_sft_objective_is_the_default_and_reports_no_figures(gemma, tiny_tokenizer, demo_pairs, tmp_path):
    model, tokenizer = gemma
    examples = [p.chosen for p in _causal_pairs(tokenizer, demo_pairs, 4)]
    cfg = LoopConfig(batch_size=4, grad_accum=1, lr=1e-2, seed=0, max_steps=1, warmup_ratio=0.0)
    result = train_loop(model, examples, [], cfg, tokenizer.pad_token_id, False, tmp_path, log=_quiet)
    assert SFTObjective().units(examples) == result.target_tokens == sum(e.n_target for e in examples)
    assert result.metric_history == [] and "metric_history" not in result.to_dict()


def _kto_run(model_dir, items, ckpt, **overrides):
    loaded = load_model(str(model_dir), dtype="float32")
    torch.manual_seed(0)
    model = attach_lora(loaded.model, 4, 8, 0.0, GEMMA_TARGETS)
    cfg = dict(batch_size=4, grad_accum=1, lr=1e-2, seed=3, max_steps=3, warmup_ratio=0.0, eval_every=50)
    cfg.update(overrides)
    pad = loaded.tokenizer.pad_token_id
    result = train_loop(model, items, [], LoopConfig(**cfg), pad, False, ckpt, log=_quiet, objective=KTOObjective(0.5))
    return result, model


def test_kto_reference_point_is_the_steps_so_accumulation_matches_one_large_batch(
    tiny_gemma_dir, tiny_tokenizer, demo_pairs, tmp_path
):
    pairs = _causal_pairs(tiny_tokenizer, demo_pairs, 6)
    items = [item for p in pairs for item in (KTOExample(p.chosen, True), KTOExample(p.rejected, False))]
    big, big_model = _kto_run(tiny_gemma_dir, items, tmp_path / "a", batch_size=4, grad_accum=1)
    acc, acc_model = _kto_run(tiny_gemma_dir, items, tmp_path / "b", batch_size=2, grad_accum=2)

    assert [loss for _, loss in acc.loss_history] == pytest.approx([loss for _, loss in big.loss_history], rel=1e-5)
    z = [figures["kl"] for _, figures in big.metric_history]
    assert z[0] == 0.0 and z[2] > 0  # the reference point moved, so its equality below means something
    assert [figures["kl"] for _, figures in acc.metric_history] == pytest.approx(z, rel=1e-5)
    a, b = _trainable(acc_model), _trainable(big_model)
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-6, msg=name)


def test_kto_step_reference_point_is_the_mean_mismatched_log_ratio(gemma, demo_pairs):
    """step_context's z equals kto_loss's z on the same rows collated as one batch (the per-batch path)."""
    model, tokenizer = gemma
    _perturb_lora(model, scale=0.05)
    pairs = _causal_pairs(tokenizer, demo_pairs, 3)
    items = [KTOExample(p.chosen, True) for p in pairs] + [KTOExample(p.rejected, False) for p in pairs]
    objective, pad = KTOObjective(beta=0.5), tokenizer.pad_token_id
    model.train()
    context = objective.step_context(model, items, range(len(items)), pad, False, batch_size=4)
    whole_sum, whole_metrics = objective.loss(model, objective.collate(items, pad, False), False)
    step_sum, step_metrics = objective.loss(model, objective.collate(items, pad, False, **context), False)
    assert context["reference_point"] == pytest.approx(whole_metrics["kl"][0], rel=1e-5, abs=1e-7)
    assert float(step_sum) == pytest.approx(float(whole_sum), rel=1e-5)
    # by hand: z is the clamped mean over the rotated rows of policy - reference
    rows = collate_pairs(
        [PairExample(e, e) for e in mismatched_examples([i.example for i in items], False)], pad, False
    )
    with torch.no_grad():
        ratio = (
            sequence_logps(model, rows, False)[: len(items)] - batch_reference_logps(model, rows, False)[: len(items)]
        )
    assert context["reference_point"] == pytest.approx(max(0.0, float(ratio.mean())), rel=1e-5, abs=1e-7)
