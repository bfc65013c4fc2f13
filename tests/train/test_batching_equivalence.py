"""Batching optimisations change speed, not the numbers: a length-grouped (right-padded) batch and a
packed block give the loss and the gradients of their examples taken one at a time, unpadded."""

from __future__ import annotations

import pytest
import torch

from medtune.models.loading import load_model
from medtune.models.scoring import causal_target_loss
from medtune.train.batching import collate, encode_translation_pairs, plan_batches
from medtune.train.packing import pack_documents

DOCS = [
    "Keep the wound clean and dry.",
    "Take one tablet every eight hours with food.",
    "Call your doctor if the fever lasts more than three days or you feel short of breath.",
]


@pytest.fixture(scope="module")
def gemma(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32", device="cpu")
    loaded.model.eval()  # no dropout: the same numbers every pass
    return loaded


def _loss_and_grads(model, batch) -> tuple[float, int, dict[str, torch.Tensor]]:
    """The summed target loss of ``batch``, its target tokens, and the gradient of every parameter."""
    model.zero_grad(set_to_none=True)
    loss, tokens = causal_target_loss(model, batch)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), int(tokens), grads


def _summed_alone(model, examples, pad_id) -> tuple[float, int, dict[str, torch.Tensor]]:
    total, count, grads = 0.0, 0, {}
    for example in examples:
        loss, tokens, own = _loss_and_grads(model, collate([example], pad_id, seq2seq=False))
        total, count = total + loss, count + tokens
        for name, grad in own.items():
            grads[name] = grads[name] + grad if name in grads else grad
    return total, count, grads


def _assert_same(batched, alone) -> None:
    (loss, tokens, grads), (loss_alone, tokens_alone, grads_alone) = batched, alone
    assert tokens == tokens_alone
    assert loss == pytest.approx(loss_alone, rel=1e-5)
    assert grads.keys() == grads_alone.keys() and len(grads) > 10
    for name, grad in grads.items():
        # float32 sums in another order: ~2e-6 apart on gradients of a ~1300-nat summed loss
        torch.testing.assert_close(grad, grads_alone[name], rtol=1e-4, atol=1e-5)


def test_a_length_grouped_padded_batch_equals_its_examples_alone(gemma, demo_pairs):
    tok = gemma.tokenizer
    examples = encode_translation_pairs(tok, demo_pairs[:24], seq2seq=False, max_length=192)
    batch_indices = next(b for b in plan_batches(examples, 4, seed=0, epoch=0) if len(b) == 4)
    chosen = [examples[i] for i in batch_indices]
    mixed = [examples[0], examples[5], examples[11]]  # unsorted lengths: padding up to the longest
    for group in (chosen, mixed):
        batch = collate(group, tok.pad_token_id, seq2seq=False)
        assert (batch["attention_mask"] == 0).any() or len({len(e.input_ids) for e in group}) == 1
        _assert_same(_loss_and_grads(gemma.model, batch), _summed_alone(gemma.model, group, tok.pad_token_id))


def test_a_packed_block_gives_the_gradients_of_its_documents_alone(gemma):
    tok = gemma.tokenizer
    [block] = pack_documents(tok, DOCS, block_size=1000)  # all three documents in one block
    singles = [pack_documents(tok, [doc], block_size=1000)[0] for doc in DOCS]
    packed = _loss_and_grads(gemma.model, collate([block], tok.pad_token_id, seq2seq=False))
    _assert_same(packed, _summed_alone(gemma.model, singles, tok.pad_token_id))
