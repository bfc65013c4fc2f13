"""Fixed-size digests of texts, so duplicate and train/test overlap checks scale past memory.

A set of full sentences grows with the corpus's characters; a set of 16-byte BLAKE2b digests grows
only with its row count (a million pairs take tens of MB, not the corpus's size again). Two different
texts share a 128-bit digest with odds far below any hardware error, so the checks stay exact in practice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

DIGEST_BYTES = 16  # 128 bits: a collision among 10^12 texts has odds of about 1 in 10^14


def text_digest(*parts: str) -> bytes:
    """The digest of one or more texts; each part is length-prefixed, so ("ab", "c") != ("a", "bc")."""
    digest = hashlib.blake2b(digest_size=DIGEST_BYTES)
    for part in parts:
        encoded = part.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return digest.digest()


class TextDigests:
    """A set of texts that stores their digests only: ``in``, ``add`` and ``len`` as on a set of strings."""

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self._digests: set[bytes] = {text_digest(text) for text in texts}

    @classmethod
    def of_digests(cls, digests: Iterable[bytes]) -> TextDigests:
        """The set of the texts whose :func:`text_digest` values are ``digests``."""
        made = cls()
        made._digests = set(digests)
        return made

    def has_digest(self, digest: bytes) -> bool:
        """Whether the text whose :func:`text_digest` is ``digest`` is in the set."""
        return digest in self._digests

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and text_digest(text) in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, text: str) -> None:
        """Remember ``text``."""
        self._digests.add(text_digest(text))

    def union(self, other: TextDigests) -> TextDigests:
        """A new set holding the texts of both."""
        both = TextDigests()
        both._digests = self._digests | other._digests
        return both
