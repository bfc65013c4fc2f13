"""The parity probe of medtune's fused output layer, and the fallback to the model's own output layer.

Tiny Granite (``logits_scaling``) and Cohere (``logit_scale``) models scale their logits in their own
forward, which the fused path does not know about: through medtune's training loss, per-token NLL
(perplexity) and MCQ letter log-likelihoods they must get exactly their own forward's numbers. Tiny
Gemma (soft-capped) and Llama keep the fused path, in float32 and in bfloat16 on CPU.
"""

from __future__ import annotations

import gc
import json
import logging
import weakref

import pytest
import torch
import torch.nn.functional as F

from medtune.data.examples import IGNORE
from medtune.data.mcq import MCQItem
from medtune.data.text import Document
from medtune.eval.loglik import continuation_log_probs, row_target_nll
from medtune.eval.mcq import evaluate_mcq, letter_continuations, mcq_prompt_text
from medtune.eval.perplexity import document_windows, evaluate_perplexity
from medtune.models.loading import LoadedModel, ModelRef
from medtune.models.scoring import causal_target_loss, check_output_layer, logits_at, token_nll
from medtune.train.batching import collate, encode_translation_pairs

LOGGER = "medtune.models.scoring"
SCALED = {"granite": "logits_scaling=8.0", "cohere": "logit_scale=0.0625"}  # far from 1, as real checkpoints


@pytest.fixture(scope="module")
def build_tiny(tiny_tokenizer, tiny_gemma_dir):
    """``build(kind, dtype)``: a fresh 2-layer causal LM of the family, fixed random weights, eval mode."""

    def build(kind: str, dtype: torch.dtype = torch.float32):
        if kind == "gemma":  # the session's tiny Gemma 3, soft-capped so that branch is probed too
            from transformers import Gemma3ForCausalLM

            model = Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=dtype).eval()
            model.config.final_logit_softcapping = 5.0
            return model
        return build_llama_family(kind, tiny_tokenizer, dtype)

    return build


def build_llama_family(kind: str, tokenizer, dtype: torch.dtype):
    """Llama, or Granite / Cohere with their logit scaling far from 1 (as in real checkpoints)."""
    from transformers import (
        CohereConfig,
        CohereForCausalLM,
        GraniteConfig,
        GraniteForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    settings = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    families = {
        "llama": (LlamaForCausalLM, LlamaConfig, {}),
        "granite": (GraniteForCausalLM, GraniteConfig, {"logits_scaling": 8.0}),
        "cohere": (CohereForCausalLM, CohereConfig, {"logit_scale": 0.0625}),
    }
    model_class, config_class, scaling = families[kind]
    torch.manual_seed(0)
    return model_class(config_class(**settings, **scaling)).to(dtype).eval()


@pytest.fixture(scope="module")
def batch(tiny_tokenizer, demo_pairs) -> dict[str, torch.Tensor]:
    examples = encode_translation_pairs(tiny_tokenizer, demo_pairs[:5], seq2seq=False, max_length=192)
    batch = collate(examples, tiny_tokenizer.pad_token_id, seq2seq=False)
    assert (batch["attention_mask"] == 0).any()  # padding is present, so masking is exercised
    return batch


def own_loss(model, batch) -> torch.Tensor:
    """The model's own forward loss: its logits, shifted by one, mean cross-entropy over labels."""
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss


def own_token_nll(model, batch) -> torch.Tensor:
    """Cross-entropy of every labelled token from the model's own full logits (row-major order)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    return F.cross_entropy(logits[keep].float(), targets[keep], reduction="none")


def mcq_item(i: int) -> MCQItem:
    question = "Which agent reverses heparin?" + " Answer after some thought." * i
    options = {"A": "Protamine sulfate", "B": "Vitamin K", "C": "Flumazenil", "D": "Desmopressin"}
    return MCQItem(f"q{i}", question, options, "ABCDA"[i], origin=f"t.jsonl:{i + 1}")


# --- the probe's decision -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["gemma", "llama"])
def test_probe_keeps_the_fused_path_where_it_equals_the_model(kind, dtype, batch, caplog, build_tiny):
    model = build_tiny(kind, dtype)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        check = check_output_layer(model, batch)
    assert check.fused and check.dtype == dtype and check.reason == ""
    assert 0 <= check.max_diff <= check.tolerance
    assert check.tolerance < (1e-3 if dtype == torch.float32 else 0.05)
    assert not caplog.records


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kind", ["granite", "cohere"])
def test_probe_falls_back_for_scaled_logits_and_says_so_once(kind, dtype, tiny_tokenizer, batch, caplog, build_tiny):
    model = build_tiny(kind, dtype)
    with caplog.at_level(logging.WARNING, logger=LOGGER), torch.no_grad():
        check = check_output_layer(model, batch)
        causal_target_loss(model, batch)  # every consumer goes through the same cached decision
        token_nll(model, batch)
        continuation_log_probs(model, tiny_tokenizer.pad_token_id, [([2, 40, 41], [[7], [8, 9]])])
    assert not check.fused
    assert check.max_diff > 10 * check.tolerance
    assert check_output_layer(model, batch) is check
    [record] = caplog.records
    message = record.getMessage()
    assert message.startswith(f"{kind} (") and SCALED[kind] in message
    assert f"max |Δ log-prob| = {check.max_diff:.3g}" in message
    assert "using the model's own output layer" in message


def test_unscaled_granite_keeps_the_fused_path(batch, build_tiny):
    model = build_tiny("granite")
    model.config.logits_scaling = 1.0  # the probe judges the numbers, not the model type
    assert check_output_layer(model, batch).fused


def test_probe_uses_the_autocast_dtype(batch, build_tiny):
    model = build_tiny("gemma")  # float32 weights, bfloat16 compute
    with torch.autocast("cpu", dtype=torch.bfloat16):
        check = check_output_layer(model, batch)
    assert check.fused and check.dtype == torch.bfloat16


def test_probe_restores_every_module_mode_and_holds_no_reference(batch, build_tiny):
    model = build_tiny("granite").train()
    model.model.layers[1].eval()  # a mixed state must come back exactly
    modes = [m.training for m in model.modules()]
    check_output_layer(model, batch)
    assert [m.training for m in model.modules()] == modes
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None  # the cached decision does not keep the model alive


# --- scaled-logit models get exactly their own numbers through every consumer -----------------


@pytest.mark.parametrize("kind", ["granite", "cohere"])
def test_training_loss_and_gradients_equal_the_models_own(kind, batch, build_tiny):
    model = build_tiny(kind).train()  # the config's dropout is 0
    loss_sum, n = causal_target_loss(model, batch)
    (loss_sum / n).backward()
    ours = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    reference = own_loss(model, batch)
    reference.backward()
    assert not check_output_layer(model, batch).fused
    assert n == int((batch["labels"][:, 1:] != IGNORE).sum())
    assert loss_sum.item() / n == pytest.approx(reference.item(), abs=1e-5)
    assert reference.item() > 1.0  # a random model: not a comparison of two zeros
    for name, p in model.named_parameters():
        torch.testing.assert_close(ours[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", ["granite", "cohere"])
def test_token_nll_and_perplexity_equal_the_models_own(kind, tiny_tokenizer, batch, tmp_path, build_tiny):
    model = build_tiny(kind)
    with torch.no_grad():
        nll, keep = token_nll(model, batch)
        reference = own_token_nll(model, batch)
        loss_sum, n = causal_target_loss(model, batch)
        rows, counts = row_target_nll(model, batch)
    assert keep.tolist() == (batch["labels"][:, 1:] != IGNORE).tolist()
    torch.testing.assert_close(nll, reference, rtol=0, atol=1e-5)
    assert float(loss_sum) == pytest.approx(float(reference.sum()), rel=1e-6)
    assert counts.tolist() == keep.sum(dim=1).tolist() and n == int(keep.sum())
    assert float(rows.sum()) == pytest.approx(float(reference.sum()), rel=1e-6)

    docs = [
        Document("Keep the wound clean and dry.", "d1", "x:1"),
        Document("Warfarin and vitamin K. " * 4, "d2", "x:2"),
    ]
    loaded = LoadedModel(model, tiny_tokenizer, ModelRef(kind, kind))
    metrics = evaluate_perplexity(loaded, docs, tmp_path, max_length=16, batch_size=2)
    out = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    for doc, row in zip(docs, out, strict=True):
        windows = collate(document_windows(tiny_tokenizer, doc, 16), tiny_tokenizer.pad_token_id, seq2seq=False)
        with torch.no_grad():
            expected = own_token_nll(model, windows)
        assert row["tokens"] == len(expected) and row["nll"] == pytest.approx(float(expected.sum()), abs=1e-4)
    total = sum(r["nll"] for r in out) / sum(r["tokens"] for r in out)
    assert metrics["mean_nll"] == pytest.approx(total, abs=1e-5)


@pytest.mark.parametrize("kind", ["granite", "cohere"])
def test_mcq_letter_log_likelihoods_equal_the_models_own(kind, tiny_tokenizer, tmp_path, build_tiny):
    model = build_tiny(kind)
    items = [mcq_item(i) for i in range(5)]  # different lengths: padded rows in each batch of 3
    assert [len(c) for c in letter_continuations(tiny_tokenizer, "ABCD").values()] == [1, 2, 1, 1]
    loaded = LoadedModel(model, tiny_tokenizer, ModelRef(kind, kind))
    evaluate_mcq(loaded, items, tmp_path, mode="loglik", batch_size=3, n_bootstrap=50)
    rows = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    for q, row in zip(items, rows, strict=True):
        prompt_ids = tiny_tokenizer(mcq_prompt_text(tiny_tokenizer, q, [], chat=False))["input_ids"]
        for letter, continuation in letter_continuations(tiny_tokenizer, "ABCD").items():
            with torch.no_grad():
                log_probs = torch.log_softmax(model(torch.tensor([prompt_ids + continuation])).logits[0].float(), -1)
            expected = sum(float(log_probs[len(prompt_ids) - 1 + j, t]) for j, t in enumerate(continuation))
            assert row["option_logprobs"][letter] == pytest.approx(expected, abs=1e-5)


def test_logits_at_reads_the_chosen_positions_of_padded_rows(batch, build_tiny):
    for kind in ("gemma", "granite"):
        model = build_tiny(kind)
        where = torch.zeros(batch["input_ids"].shape, dtype=torch.bool)
        where[0, [1, 5]] = where[2, 3] = where[4, 0] = True
        with torch.no_grad():
            full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            got = logits_at(model, batch, where)
        torch.testing.assert_close(got, full[where], rtol=0, atol=1e-5)


# --- bfloat16 on CPU --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gemma", "granite", "cohere"])
def test_bfloat16_loss_equals_the_models_own(kind, batch, build_tiny):
    model = build_tiny(kind, torch.bfloat16)
    with torch.no_grad():
        loss_sum, n = causal_target_loss(model, batch)
        reference = float(own_loss(model, batch))
    assert check_output_layer(model, batch).fused == (kind == "gemma")
    # Fallback: the very logits of the model's forward, so as close as float32 summation allows. Fused
    # (Gemma): medtune soft-caps in float32 where the model rounds each step to bfloat16.
    assert float(loss_sum) / n == pytest.approx(reference, abs=1e-5 if kind != "gemma" else 2e-3)
