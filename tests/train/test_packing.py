"""Packing for continued pre-training: block boundaries, labels, positions and attention isolation."""

from __future__ import annotations

import pytest
import torch

from medtune.data.examples import IGNORE
from medtune.models.loading import load_model
from medtune.models.scoring import causal_target_loss
from medtune.train.batching import collate
from medtune.train.packing import document_token_ids, pack_documents, packing_efficiency

DOCS = [
    "Keep the wound clean and dry.",
    "Take one tablet every eight hours with food.",
    "Call your doctor if the fever lasts more than three days or you feel short of breath.",
    "Rest.",
]


def test_blocks_keep_every_token_in_order_and_restart_positions(tiny_tokenizer):
    blocks = pack_documents(tiny_tokenizer, DOCS, block_size=16)
    stream = [t for d in DOCS for t in document_token_ids(tiny_tokenizer, d)]
    assert [t for b in blocks for t in b.input_ids] == stream
    assert all(len(b.input_ids) == 16 for b in blocks[:-1]) and 0 < len(blocks[-1].input_ids) <= 16
    for block in blocks:
        starts = [i for i, p in enumerate(block.position_ids) if p == 0]
        assert starts[0] == 0
        for i, (token, label) in enumerate(zip(block.input_ids, block.labels, strict=True)):
            # segment starts are not predicted from another document; every other token is a label
            assert label == (IGNORE if i in starts else token)
        for a, b in zip(block.position_ids, block.position_ids[1:], strict=False):
            assert b == a + 1 or b == 0
    # each document begins with <bos> and ends with <eos>
    first = document_token_ids(tiny_tokenizer, DOCS[0])
    assert first[0] == tiny_tokenizer.bos_token_id and first[-1] == tiny_tokenizer.eos_token_id
    assert packing_efficiency(blocks, 16) == pytest.approx(len(stream) / (16 * len(blocks)))


def test_no_attention_across_documents(tiny_gemma_dir):
    """Logits of a document packed after another equal its logits when run alone."""
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    tok, model = loaded.tokenizer, loaded.model.eval()
    a, b = document_token_ids(tok, DOCS[1]), document_token_ids(tok, DOCS[2])
    ids = torch.tensor([a + b])
    positions = torch.tensor([list(range(len(a))) + list(range(len(b)))])
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=positions, use_cache=False).logits[0, len(a) :]
        alone = model(input_ids=torch.tensor([b]), use_cache=False).logits[0]
        leaky = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[0, len(a) :]
    assert torch.allclose(packed, alone, atol=1e-5)
    assert not torch.allclose(leaky, alone, atol=1e-3)  # the check above would catch cross-document attention


def test_packed_loss_equals_sum_of_document_losses(tiny_gemma_dir):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    tok, model = loaded.tokenizer, loaded.model.eval()
    blocks = pack_documents(tok, DOCS[:2], block_size=1000)  # both documents in one block
    assert len(blocks) == 1
    with torch.no_grad():
        packed, n = causal_target_loss(model, collate(blocks, tok.pad_token_id, seq2seq=False))
        total, count = 0.0, 0
        for doc in DOCS[:2]:
            ids = torch.tensor([document_token_ids(tok, doc)])
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1]
            total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
    assert n == count
    assert float(packed) == pytest.approx(total, rel=1e-5)
