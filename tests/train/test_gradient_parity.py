"""Gradient parity: with LoRA and activation checkpointing on, medtune's fused output-layer loss gives
the same loss and the same adapter gradients as the model's own forward + cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE
from medtune.models.adapters import attach_lora
from medtune.models.scoring import causal_target_loss, check_output_layer
from medtune.train.batching import collate, encode_translation_pairs

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _adapter_grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_fused_loss_and_adapter_gradients_equal_the_models_own(tiny_gemma_dir, tiny_tokenizer, demo_pairs, softcap):
    from transformers import Gemma3ForCausalLM

    base = Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32)
    base.config.final_logit_softcapping = softcap
    # as train/setup.py does for gradient_checkpointing: true
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    torch.manual_seed(0)
    model = attach_lora(base, 4, 8, 0.0, LORA_TARGETS)
    with torch.no_grad():  # non-zero B: otherwise every lora_A gradient is zero and proves nothing
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    model.train()
    examples = encode_translation_pairs(tiny_tokenizer, demo_pairs[:6], seq2seq=False, max_length=192)
    batch = collate(examples, tiny_tokenizer.pad_token_id, seq2seq=False)
    assert check_output_layer(model, batch).fused  # the probe runs first, so the passes below are counted alone
    layer_calls = []
    # inside the checkpointed layer: the backward pass's recomputation runs it again
    base.model.layers[0].mlp.register_forward_hook(lambda *_: layer_calls.append(1))

    loss_sum, n = causal_target_loss(model, batch)
    (loss_sum / n).backward()
    fused = _adapter_grads(model)
    fused_calls = len(layer_calls)

    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    reference = F.cross_entropy(logits[:, :-1][keep].float(), targets[keep], reduction="sum")
    (reference / n).backward()
    own = _adapter_grads(model)

    assert model.training and base.is_activation_checkpointing
    assert fused_calls == 2 and len(layer_calls) == 4  # checkpointing recomputed the layer in each backward
    assert n == int(keep.sum())
    assert loss_sum.item() == pytest.approx(reference.item(), rel=1e-6)
    assert fused.keys() == own.keys() and len(fused) == 2 * len(LORA_TARGETS) * 2  # A and B, 7 targets, 2 layers
    for name, grad in fused.items():
        assert grad.abs().max() > 1e-6, name  # every adapter receives a gradient
        torch.testing.assert_close(grad, own[name], rtol=1e-5, atol=1e-7, msg=name)
