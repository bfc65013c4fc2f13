"""Packing raw documents into fixed-length blocks for continued pre-training.

Documents are written one after another as ``<bos> text <eos>`` and cut into blocks of
``block_size`` tokens, so no position is wasted on padding. Inside a block, ``position_ids``
restart at 0 wherever a new document (or the continuation of a cut one) begins: transformers
reads that as packed sequences and keeps attention inside each document (the attention mask is
then built per document for the eager and sdpa implementations too). The first token of each
segment carries no label, because nothing before it in the block belongs to the same document.

Block ``i`` is simply tokens ``[i * block_size, (i + 1) * block_size)`` of the documents' token
stream, so :class:`PackedBlocks` cuts it on access from a :class:`TokenStream`: in memory, or
memory-mapped from the run folder's token cache (``train/token_cache.py``) for corpora larger than memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medtune.data.examples import IGNORE, Example


def document_token_ids(tokenizer, text: str) -> list[int]:
    """``<bos> text <eos>`` as the tokenizer writes it (BOS only if the tokenizer adds one)."""
    return document_token_id_lists(tokenizer, [text])[0]


def document_token_id_lists(tokenizer, texts: list[str]) -> list[list[int]]:
    """:func:`document_token_ids` of several documents in one tokenizer call (a fast tokenizer batches them)."""
    eos = tokenizer.eos_token_id
    lists = tokenizer(texts, add_special_tokens=True, return_attention_mask=False)["input_ids"] if texts else []
    return [ids + [eos] if eos is not None and (not ids or ids[-1] != eos) else ids for ids in lists]


@dataclass(frozen=True)
class TokenStream:
    """Documents' token ids one after another (``ids``) and the offset where each document ends (``ends``)."""

    ids: np.ndarray
    ends: np.ndarray


def token_stream(tokenizer, texts: list[str]) -> TokenStream:
    """The token stream of ``texts``, in memory."""
    lists = document_token_id_lists(tokenizer, texts)
    lengths = np.array([len(ids) for ids in lists], dtype=np.int64)
    ids = np.fromiter((t for doc in lists for t in doc), dtype=np.uint32, count=int(lengths.sum()))
    return TokenStream(ids, np.cumsum(lengths))


class PackedBlocks(Sequence[Example]):
    """The blocks of :func:`pack_documents`, each cut from ``stream`` when it is read.

    ``lengths`` gives every block's length without building the blocks (what batch planning needs).
    """

    def __init__(self, stream: TokenStream, block_size: int) -> None:
        self.stream = stream
        self.block_size = block_size
        self.n_tokens = len(stream.ids)

    def __len__(self) -> int:
        return -(-self.n_tokens // self.block_size)

    @property
    def lengths(self) -> list[int]:
        """Each block's number of tokens (all ``block_size`` but perhaps the last)."""
        full, rest = divmod(self.n_tokens, self.block_size)
        return [self.block_size] * full + ([rest] if rest else [])

    def __getitem__(self, index):  # type: ignore[override]  # an int gives an Example, a slice a list of them
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(f"block {index} of {len(self)}")
        index %= len(self)
        start = index * self.block_size
        stop = min(start + self.block_size, self.n_tokens)
        ids = np.asarray(self.stream.ids[start:stop], dtype=np.int64)
        ends = self.stream.ends
        inside = ends[np.searchsorted(ends, start, "right") : np.searchsorted(ends, stop, "left")] - start
        is_start = np.zeros(len(ids), dtype=bool)
        is_start[0], is_start[inside] = True, True  # the block's first token and each document start in it
        offsets = np.arange(len(ids))
        positions = offsets - np.maximum.accumulate(np.where(is_start, offsets, 0))
        labels = np.where(is_start, IGNORE, ids)
        return Example(ids.tolist(), labels.tolist(), positions.tolist())


def pack_documents(tokenizer, texts: list[str], block_size: int) -> list[Example]:
    """Pack documents into blocks of ``block_size`` tokens (the last block may be shorter).

    Returns:
        Examples with ``input_ids``, ``labels`` (every token except segment starts) and
        ``position_ids`` (restarting at each segment).
    """
    return list(PackedBlocks(token_stream(tokenizer, texts), block_size))


def packing_efficiency(examples: Sequence[Example], block_size: int) -> float:
    """Share of block positions holding real tokens (1.0 = no padding at all)."""
    lengths = examples.lengths if isinstance(examples, PackedBlocks) else [len(e.input_ids) for e in examples]
    return sum(lengths) / (block_size * len(lengths)) if lengths else 0.0
