"""A memory-mapped token cache of documents in the run folder, so a corpus larger than memory trains.

Documents are tokenised on the fly in chunks and appended to two flat files: ``ids.u32`` (every
document's ``<bos> text <eos>`` ids, one after another, as ``np.uint32``) and ``ends.i64`` (where each
document ends). ``state.json`` records the inputs' fingerprint and how far the build got, after each
chunk: a completed cache is reused while the fingerprint is unchanged, a partial one of the same
inputs resumes where it stopped, anything else is rebuilt. Training reads blocks straight from the
memory map (``train/packing.py``'s ``PackedBlocks``), so memory holds the model, not the corpus.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from medtune.data.io import iter_rows
from medtune.train.packing import TokenStream, document_token_id_lists

IDS, ENDS, STATE = "ids.u32", "ends.i64", "state.json"
CACHE_VERSION = 1  # bump when the layout or the way documents are tokenised changes
# Text tokenised per call: enough for the fast tokenizer's batching, small next to the model (a call's
# token lists and encodings take ~50x the text's bytes).
CHUNK_CHARACTERS = 1 << 20
CHUNK_DOCUMENTS = 256


def cache_fingerprint(tokenizer, source: Path) -> str:
    """A digest of ``source``'s bytes and of the tokenizer (its full definition when it is a fast one)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"medtune-token-cache-{CACHE_VERSION}".encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    definition = backend.to_str() if backend is not None else f"{type(tokenizer).__name__}:{tokenizer.name_or_path}"
    digest.update(definition.encode("utf-8"))
    digest.update(str((tokenizer.bos_token_id, tokenizer.eos_token_id, len(tokenizer))).encode())
    with source.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def build_token_cache(
    tokenizer,
    documents: Callable[[], Iterable[str]],
    folder: Path,
    fingerprint: str,
    log: Callable[[str], Any] = print,
) -> TokenStream:
    """The token cache of ``documents`` in ``folder``: reused, resumed or built.

    Args:
        tokenizer: the model's tokenizer (documents become ``<bos> text <eos>``).
        documents: gives the documents' texts in order, each time it is called (read from disk).
        folder: where the cache lives (created); files of another fingerprint are replaced.
        fingerprint: identifies the inputs (:func:`cache_fingerprint`).
        log: receives one line saying what was done.
    Returns:
        The cached tokens, memory-mapped read-only.
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = _read_state(folder)
    if state.get("fingerprint") == fingerprint and state.get("complete"):
        log(f"Token cache: reusing {folder} ({state['tokens']:,} tokens in {state['documents']:,} documents)")
        return open_token_cache(folder)
    resume = state.get("fingerprint") == fingerprint
    done_docs, done_tokens = (state["documents"], state["tokens"]) if resume else (0, 0)
    for name, size in ((IDS, done_tokens * 4), (ENDS, done_docs * 8)):
        with (folder / name).open("ab") as fh:
            fh.truncate(size)  # drop whatever a stopped build wrote after its last recorded chunk
    texts = islice(iter(documents()), done_docs, None)  # a resumed build skips what it already holds
    with (folder / IDS).open("ab") as ids_file, (folder / ENDS).open("ab") as ends_file:
        for chunk in _chunks(texts):
            lists = document_token_id_lists(tokenizer, chunk)
            lengths = np.fromiter((len(ids) for ids in lists), dtype=np.int64, count=len(lists))
            ids_file.write(np.fromiter((t for ids in lists for t in ids), np.uint32, int(lengths.sum())).tobytes())
            ends_file.write((done_tokens + np.cumsum(lengths)).tobytes())
            ids_file.flush(), ends_file.flush()
            done_docs, done_tokens = done_docs + len(chunk), done_tokens + int(lengths.sum())
            _write_state(folder, fingerprint, done_docs, done_tokens, complete=False)
    _write_state(folder, fingerprint, done_docs, done_tokens, complete=True)
    how = f"resumed at document {state['documents']:,}" if resume and state.get("documents") else "built"
    log(f"Token cache: {how} {folder} ({done_tokens:,} tokens in {done_docs:,} documents)")
    return open_token_cache(folder)


def _chunks(texts: Iterator[str]) -> Iterator[list[str]]:
    """Consecutive runs of documents of about ``CHUNK_CHARACTERS`` (at most ``CHUNK_DOCUMENTS``; a longer
    document is a chunk of its own)."""
    chunk: list[str] = []
    size = 0
    for text in texts:
        chunk.append(text)
        size += len(text)
        if size >= CHUNK_CHARACTERS or len(chunk) >= CHUNK_DOCUMENTS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def open_token_cache(folder: Path) -> TokenStream:
    """The completed cache in ``folder``, memory-mapped read-only (empty arrays for an empty corpus)."""
    state = _read_state(folder)
    ids = _map(folder / IDS, np.uint32, state["tokens"])
    ends = _map(folder / ENDS, np.int64, state["documents"])
    return TokenStream(ids, ends)


def _map(path: Path, dtype, count: int) -> np.ndarray:
    # np.memmap refuses a zero-length file, and an empty corpus is a valid (if useless) cache.
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,)) if count else np.zeros(0, dtype=dtype)


def _read_state(folder: Path) -> dict:
    path = folder / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write_state(folder: Path, fingerprint: str, documents: int, tokens: int, complete: bool) -> None:
    """Record progress atomically (a temporary file renamed), after the data it describes is flushed."""
    record = {"fingerprint": fingerprint, "documents": documents, "tokens": tokens, "complete": complete}
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps(record), encoding="utf-8")
    tmp.replace(folder / STATE)


def cached_split_tokens(tokenizer, split_file: Path, folder: Path, log: Callable[[str], Any] = print) -> TokenStream:
    """The token cache (in ``folder``) of a data-stage split file: one JSON object with ``text`` per line."""

    def texts() -> Iterator[str]:
        return (row.fields["text"] for row in iter_rows(str(split_file)))

    return build_token_cache(tokenizer, texts, folder, cache_fingerprint(tokenizer, split_file), log)
