"""Per-sequence log-probs: each row's value equals -(the model's own HF loss x its target tokens), for
causal LMs (fused head, soft-capped or not, and the model's own head where the probe refuses the fused
one) and for Marian; and their gradient, with a different upstream weight per row, equals plain autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE
from medtune.models import fused_head
from medtune.models.adapters import attach_lora
from medtune.models.fused_head import linear_token_nll
from medtune.models.scoring import check_output_layer
from medtune.train.batching import collate, encode_translation_pairs
from medtune.train.loss import labelled_token_counts, sequence_logps

GEMMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MARIAN_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def _hf_row_logps(model, examples, seq2seq: bool) -> torch.Tensor:
    """-(HF loss x target tokens) of each example run alone (no padding): the oracle per row."""
    values = []
    for ex in examples:
        ids = torch.tensor([ex.input_ids])
        labels = torch.tensor([ex.labels])
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
        n = int((labels != IGNORE).sum()) if seq2seq else int((labels[:, 1:] != IGNORE).sum())
        values.append(-float(out.loss) * n)
    return torch.tensor(values, dtype=torch.float64)


def _nonzero_lora(model, targets: list[str], seed: int = 0):
    torch.manual_seed(seed)
    model = attach_lora(model, 4, 8, 0.0, targets)
    with torch.no_grad():  # a non-zero B, or every lora_A gradient is zero and proves nothing
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.3)
    return model


@pytest.fixture(scope="module")
def causal_examples(tiny_tokenizer, demo_pairs):
    return encode_translation_pairs(tiny_tokenizer, demo_pairs[:5], seq2seq=False, max_length=192)


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_causal_rows_equal_hf_loss_times_tokens(tiny_gemma_dir, tiny_tokenizer, causal_examples, softcap):
    from transformers import Gemma3ForCausalLM

    model = Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32).eval()
    model.config.final_logit_softcapping = softcap
    batch = collate(causal_examples, tiny_tokenizer.pad_token_id, seq2seq=False)
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths: padding is exercised
    with torch.no_grad():
        got = sequence_logps(model, batch, seq2seq=False)
        expected = _hf_row_logps(model, causal_examples, seq2seq=False)
    assert check_output_layer(model, batch).fused
    assert got.shape == (len(causal_examples),)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4)
    assert labelled_token_counts(batch, seq2seq=False).tolist() == [e.n_target for e in causal_examples]


def test_rows_through_the_models_own_head_when_the_probe_refuses(tiny_tokenizer, causal_examples):
    from transformers import GraniteConfig, GraniteForCausalLM

    torch.manual_seed(0)
    config = GraniteConfig(
        vocab_size=len(tiny_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=tiny_tokenizer.pad_token_id,
        logits_scaling=8.0,  # done in Granite's own forward only: the fused head would be wrong
    )
    model = _nonzero_lora(GraniteForCausalLM(config), ["q_proj", "v_proj"]).train()
    batch = collate(causal_examples, tiny_tokenizer.pad_token_id, seq2seq=False)
    assert not check_output_layer(model, batch).fused
    weights = torch.linspace(0.5, 2.0, len(causal_examples))
    (sequence_logps(model, batch, seq2seq=False) * weights).sum().backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    (_plain_logps(model, batch) * weights).sum().backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            torch.testing.assert_close(ours[name], param.grad, rtol=1e-5, atol=1e-7, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(
            sequence_logps(model, batch, seq2seq=False).double(),
            _hf_row_logps(model, causal_examples, seq2seq=False),
            rtol=1e-5,
            atol=1e-4,
        )


def _plain_logps(model, batch) -> torch.Tensor:
    """Plain autograd: full logits, log-softmax, gather the next token, mask, sum per row."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    token = torch.log_softmax(logits, -1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
    return (token * keep).sum(dim=1)


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_causal_gradient_with_per_row_weights_equals_plain_autograd(
    tiny_gemma_dir, tiny_tokenizer, causal_examples, softcap
):
    from transformers import Gemma3ForCausalLM

    # float64, so that the two summation orders agree to far below any real difference
    base = Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float64)
    base.config.final_logit_softcapping = softcap
    model = _nonzero_lora(base, GEMMA_TARGETS).double().train()
    batch = collate(causal_examples, tiny_tokenizer.pad_token_id, seq2seq=False)
    weights = torch.tensor([1.0, -0.5, 2.0, 0.25, -1.5], dtype=torch.float64)  # a different upstream gradient per row

    ours = sequence_logps(model, batch, seq2seq=False)
    assert check_output_layer(model, batch).fused
    (ours * weights).sum().backward()
    fused = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    plain = _plain_logps(model, batch)
    (plain * weights).sum().backward()

    torch.testing.assert_close(ours, plain, rtol=1e-10, atol=1e-9)
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert fused[name].abs().max() > 1e-6, name
            assert torch.allclose(fused[name], param.grad, rtol=1e-9, atol=1e-11), name


@pytest.mark.parametrize("softcap", [None, 30.0])
@pytest.mark.parametrize("weight_trainable", [False, True])
def test_per_row_fused_kernel_equals_plain_cross_entropy(monkeypatch, softcap, weight_trainable):
    monkeypatch.setattr(fused_head, "CHUNK_ROWS", 7)  # several chunks, the last one partial
    torch.manual_seed(0)
    hidden = torch.randn(23, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 16, dtype=torch.float64, requires_grad=weight_trainable)
    targets = torch.randint(0, 50, (23,))
    upstream = torch.randn(23, dtype=torch.float64)

    fused = linear_token_nll(hidden, weight, targets, softcap)
    (fused * upstream).sum().backward()
    got_h = hidden.grad.clone()
    got_w = weight.grad.clone() if weight_trainable else None
    hidden.grad = None
    if weight_trainable:
        weight.grad = None
    logits = hidden @ weight.T
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    plain = F.cross_entropy(logits, targets, reduction="none")
    (plain * upstream).sum().backward()

    assert torch.allclose(fused, plain, atol=1e-10)
    assert torch.allclose(got_h, hidden.grad, atol=1e-10)
    if weight_trainable:
        assert torch.allclose(got_w, weight.grad, atol=1e-10)
    with torch.no_grad():
        assert torch.allclose(linear_token_nll(hidden, weight, targets, softcap), plain, atol=1e-10)


def test_marian_rows_equal_hf_loss_times_tokens_and_gradient(tiny_marian_dir, demo_pairs):
    from transformers import MarianMTModel, MarianTokenizer

    tokenizer = MarianTokenizer.from_pretrained(tiny_marian_dir)
    base = MarianMTModel.from_pretrained(tiny_marian_dir, dtype=torch.float32)
    model = _nonzero_lora(base, MARIAN_TARGETS).eval()
    examples = encode_translation_pairs(tokenizer, demo_pairs[:5], seq2seq=True, max_length=128)
    batch = collate(examples, tokenizer.pad_token_id, seq2seq=True)
    assert (batch["labels"] == IGNORE).any()  # targets of different lengths: label padding is exercised
    with torch.no_grad():
        got = sequence_logps(model, batch, seq2seq=True)
        expected = _hf_row_logps(model, examples, seq2seq=True)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4)
    assert labelled_token_counts(batch, seq2seq=True).tolist() == [len(e.labels) for e in examples]

    weights = torch.tensor([1.0, -0.5, 2.0, 0.25, -1.5])
    (sequence_logps(model, batch, seq2seq=True) * weights).sum().backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    plain = torch.stack([-model(**collate([e], tokenizer.pad_token_id, True)).loss * e.n_target for e in examples])
    (plain * weights).sum().backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert torch.allclose(ours[name], param.grad, rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("weight_trainable", [False, True])
def test_per_row_fused_kernel_under_autocast_matches_plain_autograd(weight_trainable):
    """Full fine-tuning trains float32 weights under bf16 autocast: a backward pass that recomputes the
    logits does so under the forward's autocast, so the gradient belongs to the loss computed."""
    torch.manual_seed(0)
    hidden = torch.randn(40, 32, requires_grad=True)
    weight = (torch.randn(300, 32) * 0.5).requires_grad_(weight_trainable)
    targets = torch.randint(0, 300, (40,))
    upstream = torch.randn(40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = linear_token_nll(hidden, weight, targets)
    (fused * upstream).sum().backward()
    got = [hidden.grad.clone()] + ([weight.grad.clone()] if weight_trainable else [])
    hidden.grad = weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = (hidden @ weight.T).float()
    plain = F.cross_entropy(logits, targets, reduction="none")
    (plain * upstream).sum().backward()

    assert torch.allclose(fused, plain, rtol=1e-5)  # the same bf16 logits
    want = [hidden.grad] + ([weight.grad] if weight_trainable else [])
    # recomputed (trainable head): the same bf16 operations in the same order as autograd's, where float32
    # logits recomputed outside autocast would be off by ~7e-3; formed in the forward (frozen head): the
    # row's weight multiplies after the bf16 matmul instead of before, a bf16 rounding apart (~3e-3)
    tolerance = 1e-4 if weight_trainable else 1e-2
    for ours, theirs in zip(got, want, strict=True):
        assert float((ours - theirs).norm() / theirs.norm()) < tolerance
