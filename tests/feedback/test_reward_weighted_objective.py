"""RewardWeightedObjective is the rlhf_update rule batched: the batch's loss and gradient are the sums of
the single examples', and each single loss is what rlhf_update computes for that example."""

from __future__ import annotations

import pytest
import torch

from medtune.data.parallel import Pair
from medtune.feedback import rlhf_update
from medtune.feedback.rlhf import reset_rlhf_state
from medtune.train.batching import encode_translation_pairs
from medtune.train.objectives import RewardWeightedObjective, ScoredExample, reward_weighted_loss

ROWS = [  # (source, translation, score)
    ("The patient needs urgent attention.", "El paciente necesita atención urgente.", 0.9),
    ("Take one tablet daily.", "Tome una pastilla al día.", 0.2),
    ("Blood pressure is high.", "La presión arterial es alta y muy alta.", 0.6),
]
BASELINE = 0.5


def _lora_gemma(folder):
    """A LoRA model whose adapter already moved the policy away from the base (the disabled adapter)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(folder), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model, AutoTokenizer.from_pretrained(folder)


def _marian(folder):
    import warnings

    from transformers import MarianMTModel, MarianTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MarianMTModel.from_pretrained(folder), MarianTokenizer.from_pretrained(folder)


@pytest.mark.parametrize("kind", ["gemma-lora", "marian"])
def test_batched_equals_the_sum_of_single_rlhf_updates(kind, tiny_gemma_dir, tiny_marian_dir):
    model, tokenizer = _lora_gemma(tiny_gemma_dir) if kind == "gemma-lora" else _marian(tiny_marian_dir)
    seq2seq = kind == "marian"
    kl = 0.3 if kind == "gemma-lora" else 0.0  # a plain model's reference is precomputed (below) or a copy
    objective = RewardWeightedObjective(kl_coef=kl, clip=10.0)
    examples = encode_translation_pairs(tokenizer, [Pair(s, t) for s, t, _ in ROWS], seq2seq, 128)
    items = [ScoredExample(e, score - BASELINE) for e, (_, _, score) in zip(examples, ROWS, strict=True)]
    pad = tokenizer.pad_token_id
    params = [p for p in model.parameters() if p.requires_grad]

    batched, metrics = objective.loss(model, objective.collate(items, pad, seq2seq), seq2seq)
    batched.backward()
    batched_grads = [p.grad.clone() for p in params]
    model.zero_grad()
    singles, single_grads = [], [torch.zeros_like(p) for p in params]
    for item in items:
        loss, _ = objective.loss(model, objective.collate([item], pad, seq2seq), seq2seq)
        loss.backward()
        singles.append(float(loss.detach()))
        single_grads = [g + p.grad for g, p in zip(single_grads, params, strict=True)]
        model.zero_grad()
    assert float(batched) == pytest.approx(sum(singles), rel=1e-5)
    for a, b in zip(batched_grads, single_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert metrics["advantage"] == (pytest.approx(0.9 + 0.2 + 0.6 - 1.5), 3)
    if kl:
        assert metrics["kl"][0] > 0  # the adapter moved the policy away from the reference

    # each single loss is rlhf_update's for that row (lr 0: the model stays as it is; a fixed baseline)
    frozen = torch.optim.SGD(params, lr=0.0)
    for (source, translation, score), single in zip(ROWS, singles, strict=True):
        reset_rlhf_state(model)
        online = rlhf_update(
            model, source, translation, score, frozen, tokenizer, baseline=BASELINE, baseline_decay=1.0, kl_coef=kl
        )
        assert online == pytest.approx(single, rel=1e-5)


def test_precomputed_reference_log_probs_and_the_pure_loss():
    policy = torch.tensor([-12.0, -30.0, -4.0])
    tokens = torch.tensor([4.0, 5.0, 2.0])
    advantages = torch.tensor([0.4, -0.3, -0.5])
    ref = torch.tensor([-10.0, -30.0, -6.0])
    losses, kl = reward_weighted_loss(policy, tokens, advantages, ref, kl_coef=2.0, clip=5.0)
    d = (ref - policy) / tokens  # 0.5, 0, -1
    k3 = torch.exp(d) - d - 1
    # row 2: mean -6 is below the floor -5, so it counts as -5
    expected = torch.tensor([-0.4 * -3.0, 0.3 * -5.0, 0.5 * -2.0]) + 2.0 * k3
    torch.testing.assert_close(losses, expected)
    torch.testing.assert_close(kl, k3)
    assert kl[1] == 0

    objective = RewardWeightedObjective(kl_coef=1.0)
    from medtune.data.examples import Example

    items = [
        ScoredExample(Example([1, 2, 3], [-100, 2, 3]), 0.1, -1.5),
        ScoredExample(Example([1, 2], [-100, 2]), -0.2, -0.5),
    ]
    batch = objective.collate(items, 0, False)
    torch.testing.assert_close(batch["ref_logps"], torch.tensor([-1.5, -0.5]))
    torch.testing.assert_close(batch["advantage"], torch.tensor([0.1, -0.2]))
    assert objective.needs_reference and not RewardWeightedObjective().needs_reference
