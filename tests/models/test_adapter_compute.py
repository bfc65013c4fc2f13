"""LoRA products in the activations' dtype (compute_adapters_in_input_dtype) equal PEFT's own path.

Over a float32 base nothing changes (bit for bit); over a bf16 base each adapted layer computes
exactly ``base(x) + B(A(x)) * scaling`` with the float32 factors rounded to bf16 (checked against that
formula by hand), and a whole model's loss and gradients equal, bit for bit, PEFT's float32 adapters
under torch.autocast(bf16); the weights, their gradients and what is saved stay float32.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from peft import PeftModel

from medtune.models.adapters import _InputDtypeLinear, attach_lora, compute_adapters_in_input_dtype
from tests.conftest import build_tiny_gemma

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def lora_model(tokenizer, dtype: torch.dtype, switched: bool):
    model = build_tiny_gemma(tokenizer, seed=3).to(dtype)
    torch.manual_seed(5)
    peft_model = attach_lora(model, r=4, alpha=8, dropout=0.0, target_modules=TARGETS)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:  # PEFT starts B at zero: give it values so the adapter path counts
            with torch.no_grad():
                param.normal_(0, 0.2)
    if switched:
        assert compute_adapters_in_input_dtype(peft_model) == 2 * len(TARGETS)
    return peft_model.train()


def loss_and_grads(model, ids: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    return out.loss.item(), grads


@pytest.fixture()
def ids(tiny_tokenizer) -> torch.Tensor:
    torch.manual_seed(11)
    return torch.randint(3, len(tiny_tokenizer), (3, 17))


def test_float32_base_is_unchanged_bit_for_bit(tiny_tokenizer, ids):
    plain_loss, plain_grads = loss_and_grads(lora_model(tiny_tokenizer, torch.float32, False), ids)
    fast_loss, fast_grads = loss_and_grads(lora_model(tiny_tokenizer, torch.float32, True), ids)
    assert fast_loss == plain_loss
    assert plain_grads.keys() == fast_grads.keys()
    assert all(torch.equal(plain_grads[n], fast_grads[n]) for n in plain_grads)


def test_bf16_layer_is_the_bf16_formula(tiny_tokenizer):
    model = lora_model(tiny_tokenizer, torch.bfloat16, True)
    layer = model.base_model.model.model.layers[0].mlp.up_proj
    a, b = layer.lora_A["default"], layer.lora_B["default"]
    assert isinstance(a, _InputDtypeLinear) and a.weight.dtype == torch.float32
    x = torch.randn(2, 5, 32).to(torch.bfloat16)
    expected = (
        layer.base_layer(x) + F.linear(F.linear(x, a.weight.bfloat16()), b.weight.bfloat16()) * layer.scaling["default"]
    )
    got = layer(x)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, expected)


def test_bf16_model_equals_peft_under_autocast(tiny_tokenizer, ids):
    """The oracle: PEFT's float32 adapters under torch.autocast(bf16), the standard mixed-precision path,
    give bit-identical loss and gradients (autocast rounds the adapter products to bf16 the same way)."""
    reference = lora_model(tiny_tokenizer, torch.bfloat16, False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto_loss, auto_grads = loss_and_grads(reference, ids)
    fast_loss, fast_grads = loss_and_grads(lora_model(tiny_tokenizer, torch.bfloat16, True), ids)
    assert fast_loss == auto_loss
    assert auto_grads.keys() == fast_grads.keys()
    for name, auto in auto_grads.items():
        assert fast_grads[name].dtype == torch.float32, name  # float32 weights get float32 gradients
        assert torch.equal(fast_grads[name], auto), name


def test_bf16_model_loss_is_close_to_float32_adapters(tiny_tokenizer, ids):
    plain_loss, _ = loss_and_grads(lora_model(tiny_tokenizer, torch.bfloat16, False), ids)
    fast_loss, _ = loss_and_grads(lora_model(tiny_tokenizer, torch.bfloat16, True), ids)
    assert fast_loss == pytest.approx(plain_loss, rel=1e-3)


def test_saved_adapter_is_float32_and_loads(tiny_tokenizer, ids, tmp_path):
    model = lora_model(tiny_tokenizer, torch.bfloat16, True)
    state = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert state and all(p.dtype == torch.float32 for p in state.values())
    model.save_pretrained(tmp_path)
    reloaded = PeftModel.from_pretrained(build_tiny_gemma(tiny_tokenizer, seed=3).to(torch.bfloat16), tmp_path)
    for name, param in reloaded.named_parameters():
        if "lora_" in name:
            assert torch.equal(param.float(), state[name].detach()), name
