"""The memory-mapped token cache and the blocks cut from it: the same blocks, batches and losses as
packing the documents in memory; a finished cache is reused, a stopped one resumes, changed inputs rebuild."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medtune.data.examples import IGNORE, Example
from medtune.models.loading import load_model
from medtune.train import token_cache
from medtune.train.batching import plan_batches
from medtune.train.loop import LoopConfig, train_loop
from medtune.train.packing import PackedBlocks, document_token_ids, pack_documents
from medtune.train.token_cache import build_token_cache, cache_fingerprint, cached_split_tokens

DOCS = [
    "Keep the wound clean and dry.",
    "Take one tablet every eight hours with food.",
    "Call your doctor if the fever lasts more than three days or you feel short of breath.",
    "Rest.",
    "Insulin is stored in the fridge; an opened pen keeps for four weeks at room temperature.",
    "Wash your hands before and after changing the dressing, and do not reuse gauze.",
]


def _packed_in_memory(tokenizer, texts: list[str], block_size: int) -> list[Example]:
    """Packing as medtune did it before the token cache (document after document, cut when full): the oracle."""
    blocks: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for text in texts:
        doc = document_token_ids(tokenizer, text)
        while doc:
            room = block_size - len(ids)
            segment, doc = doc[:room], doc[room:]
            ids.extend(segment)
            labels.extend([IGNORE] + segment[1:])
            positions.extend(range(len(segment)))
            if len(ids) == block_size:
                blocks.append(Example(list(ids), list(labels), list(positions)))
                ids, labels, positions = [], [], []
    if ids:
        blocks.append(Example(ids, labels, positions))
    return blocks


def _split_file(path, texts):
    path.write_text("".join(json.dumps({"text": t, "id": None, "origin": ""}) + "\n" for t in texts), encoding="utf-8")
    return path


@pytest.mark.parametrize("block_size", [1, 5, 16, 21, 64, 4096])
def test_cached_blocks_equal_in_memory_packing(tiny_tokenizer, tmp_path, block_size):
    stream = cached_split_tokens(tiny_tokenizer, _split_file(tmp_path / "train.jsonl", DOCS), tmp_path / "c", print)
    assert isinstance(stream.ids, np.memmap)
    expected = _packed_in_memory(tiny_tokenizer, DOCS, block_size)
    blocks = PackedBlocks(stream, block_size)
    assert len(blocks) == len(expected)
    assert list(blocks) == expected
    assert pack_documents(tiny_tokenizer, DOCS, block_size) == expected
    assert blocks.lengths == [e.length for e in expected]
    assert plan_batches(blocks, 3, seed=5, epoch=1) == plan_batches(expected, 3, seed=5, epoch=1)


def test_training_on_cached_blocks_gives_the_in_memory_losses(tiny_gemma_dir, tmp_path):
    loaded = load_model(str(tiny_gemma_dir), dtype="float32")
    tok = loaded.tokenizer
    stream = cached_split_tokens(tok, _split_file(tmp_path / "train.jsonl", DOCS * 3), tmp_path / "c", print)
    histories = []
    for train in (_packed_in_memory(tok, DOCS * 3, 24), PackedBlocks(stream, 24)):
        model = load_model(str(tiny_gemma_dir), dtype="float32").model
        torch.manual_seed(0)
        cfg = LoopConfig(batch_size=2, grad_accum=1, lr=1e-3, seed=3, max_steps=4, eval_every=100, save_every=100)
        result = train_loop(
            model, train, [], cfg, tok.pad_token_id, False, tmp_path / f"ckpt{len(histories)}", log=print
        )
        histories.append(result.loss_history)
    assert len(histories[0]) == 4
    assert histories[0] == histories[1]


def _counting(texts, seen):
    def documents():
        for text in texts:
            seen.append(text)
            yield text

    return documents


def test_a_finished_cache_is_reused_and_changed_inputs_rebuild_it(tiny_tokenizer, tmp_path):
    seen: list[str] = []
    logs: list[str] = []
    build_token_cache(tiny_tokenizer, _counting(DOCS, seen), tmp_path, "fp-a", logs.append)
    assert len(seen) == len(DOCS)
    again = build_token_cache(tiny_tokenizer, _counting(DOCS, seen), tmp_path, "fp-a", logs.append)
    assert len(seen) == len(DOCS) and "reusing" in logs[-1]  # no document read again
    other = build_token_cache(tiny_tokenizer, _counting(DOCS[:2], seen), tmp_path, "fp-b", logs.append)
    assert len(other.ends) == 2 and len(again.ends) == len(DOCS)
    assert other.ids.tolist() == [t for d in DOCS[:2] for t in document_token_ids(tiny_tokenizer, d)]


def test_a_stopped_build_resumes_after_its_last_finished_chunk(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(token_cache, "CHUNK_DOCUMENTS", 2)

    def stops_after_five():
        yield from DOCS[:5]
        raise KeyboardInterrupt  # the user stopped it while the third chunk was being read

    with pytest.raises(KeyboardInterrupt):
        build_token_cache(tiny_tokenizer, stops_after_five, tmp_path / "c", "fp", print)
    state = json.loads((tmp_path / "c" / "state.json").read_text())
    assert (state["documents"], state["complete"]) == (4, False)
    seen: list[str] = []
    resumed = build_token_cache(tiny_tokenizer, _counting(DOCS, seen), tmp_path / "c", "fp", print)
    assert seen == DOCS  # the generator is read from the start, but only documents 5 and 6 are tokenised
    fresh = build_token_cache(tiny_tokenizer, lambda: iter(DOCS), tmp_path / "fresh", "fp", print)
    assert resumed.ids.tolist() == fresh.ids.tolist() and resumed.ends.tolist() == fresh.ends.tolist()


def test_the_fingerprint_follows_the_file_content(tiny_tokenizer, tmp_path):
    one = _split_file(tmp_path / "a.jsonl", DOCS)
    same = _split_file(tmp_path / "same.jsonl", DOCS)
    two = _split_file(tmp_path / "b.jsonl", DOCS[:-1])
    assert cache_fingerprint(tiny_tokenizer, one) == cache_fingerprint(tiny_tokenizer, same)
    assert cache_fingerprint(tiny_tokenizer, one) != cache_fingerprint(tiny_tokenizer, two)


def test_an_empty_split_gives_no_blocks(tiny_tokenizer, tmp_path):
    stream = cached_split_tokens(tiny_tokenizer, _split_file(tmp_path / "dev.jsonl", []), tmp_path / "c", print)
    assert len(PackedBlocks(stream, 8)) == 0 and PackedBlocks(stream, 8).lengths == []
