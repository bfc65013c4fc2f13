"""Packing raw documents into fixed-length blocks for continued pre-training.

Documents are written one after another as ``<bos> text <eos>`` and cut into blocks of
``block_size`` tokens, so no position is wasted on padding. Inside a block, ``position_ids``
restart at 0 wherever a new document (or the continuation of a cut one) begins: transformers
reads that as packed sequences and keeps attention inside each document (the attention mask is
then built per document for the eager and sdpa implementations too). The first token of each
segment carries no label, because nothing before it in the block belongs to the same document.
"""

from __future__ import annotations

from medtune.data.examples import IGNORE, Example


def document_token_ids(tokenizer, text: str) -> list[int]:
    """``<bos> text <eos>`` as the tokenizer writes it (BOS only if the tokenizer adds one)."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
        ids = ids + [tokenizer.eos_token_id]
    return ids


def pack_documents(tokenizer, texts: list[str], block_size: int) -> list[Example]:
    """Pack documents into blocks of ``block_size`` tokens (the last block may be shorter).

    Returns:
        Examples with ``input_ids``, ``labels`` (every token except segment starts) and
        ``position_ids`` (restarting at each segment).
    """
    blocks: list[Example] = []
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []

    def flush() -> None:
        if ids:
            blocks.append(Example(list(ids), list(labels), list(positions)))
            ids.clear(), labels.clear(), positions.clear()

    for text in texts:
        doc = document_token_ids(tokenizer, text)
        while doc:
            room = block_size - len(ids)
            segment, doc = doc[:room], doc[room:]
            ids.extend(segment)
            labels.extend([IGNORE] + segment[1:])
            positions.extend(range(len(segment)))
            if len(ids) == block_size:
                flush()
    flush()
    return blocks


def packing_efficiency(examples: list[Example], block_size: int) -> float:
    """Share of block positions holding real tokens (1.0 = no padding at all)."""
    return sum(len(e.input_ids) for e in examples) / (block_size * len(examples)) if examples else 0.0
