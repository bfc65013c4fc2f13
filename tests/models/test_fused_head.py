"""The chunked output-layer cross-entropy equals the plain one, in value and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medtune.models import fused_head
from medtune.models.fused_head import linear_cross_entropy


@pytest.mark.parametrize("softcap", [None, 30.0])
@pytest.mark.parametrize("weight_trainable", [False, True])
def test_matches_plain_cross_entropy(monkeypatch, softcap, weight_trainable):
    monkeypatch.setattr(fused_head, "CHUNK_ROWS", 7)  # several chunks, the last one partial
    torch.manual_seed(0)
    hidden = torch.randn(23, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=weight_trainable)
    targets = torch.randint(0, 50, (23,))

    fused = linear_cross_entropy(hidden, weight, targets, softcap)
    (fused * 0.5).backward()  # a scaled loss, as gradient accumulation does
    got_h = hidden.grad.clone()
    got_w = weight.grad.clone() if weight_trainable else None
    hidden.grad = None
    if weight_trainable:
        weight.grad = None

    logits = hidden @ weight.T
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    plain = F.cross_entropy(logits, targets, reduction="sum")
    (plain * 0.5).backward()

    assert fused.item() == pytest.approx(plain.item(), rel=1e-10)
    assert torch.allclose(got_h, hidden.grad, atol=1e-10)
    if weight_trainable:
        assert torch.allclose(got_w, weight.grad, atol=1e-10)


def test_no_grad_path_matches():
    torch.manual_seed(1)
    hidden, weight = torch.randn(300, 8), torch.randn(40, 8)
    targets = torch.randint(0, 40, (300,))
    with torch.no_grad():
        value = linear_cross_entropy(hidden, weight, targets)
    assert value.item() == pytest.approx(F.cross_entropy(hidden @ weight.T, targets, reduction="sum").item(), rel=1e-5)


def test_bf16_matches_autograd_through_upcast_logits(monkeypatch):
    """In bf16 the fused loss and hidden gradient equal plain autograd on the upcast logits (the model's
    own path: bf16 matmul, float32 cross-entropy, the logits' gradient rounded to bf16 on the way back)."""
    monkeypatch.setattr(fused_head, "CHUNK_ROWS", 16)
    torch.manual_seed(2)
    hidden = (torch.randn(40, 32) * 2).to(torch.bfloat16).requires_grad_(True)
    weight = torch.randn(3000, 32).to(torch.bfloat16)
    targets = torch.randint(0, 3000, (40,))
    logits = hidden @ weight.T
    targets[:5] = logits[:5].argmax(dim=-1)  # confident rows too: their (p - 1) must survive bf16

    fused = linear_cross_entropy(hidden, weight, targets)
    fused.backward()
    got = hidden.grad.clone()
    hidden.grad = None
    plain = F.cross_entropy((hidden @ weight.T).float(), targets, reduction="sum")
    plain.backward()

    assert fused.dtype == torch.float32
    assert fused.item() == pytest.approx(plain.item(), rel=1e-5)
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), hidden.grad.float(), rtol=1e-2, atol=1e-3)
    assert got[:5].abs().sum() > 0
