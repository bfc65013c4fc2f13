"""Stable item ids, so per-item outputs join across runs and machines.

An item keeps the data's own ``id`` when it has one; otherwise its id is a short SHA-256 hash of
its text (the source sentence, the question with its options, the document or conversation).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_HEX_DIGITS = 16  # 64 bits: a collision among a million items has odds of about 1 in 40 million
REPEAT_MARK = "~"


def text_id(*parts: str) -> str:
    """A short hex hash of the parts (joined by a separator no text holds), the same on every machine."""
    joined = "\x1f".join(parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:HASH_HEX_DIGITS]


def stable_ids(own_ids: Sequence[str | None], texts: Sequence[Sequence[str]]) -> list[str]:
    """One id per item: its own id when present, else :func:`text_id` of its text parts.

    Items whose texts are equal (a source sentence with two references) would share a hash; the
    second and later get ``~2``, ``~3``, ... in item order, so ids stay unique and stable.
    """
    ids, seen = [], {}
    for own, parts in zip(own_ids, texts, strict=True):
        if own is not None and str(own) != "":
            ids.append(str(own))
            continue
        hashed = text_id(*parts)
        seen[hashed] = seen.get(hashed, 0) + 1
        ids.append(hashed if seen[hashed] == 1 else f"{hashed}{REPEAT_MARK}{seen[hashed]}")
    return ids
