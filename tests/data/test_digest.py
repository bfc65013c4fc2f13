"""Duplicate and overlap checks by digest: same answers as sets of full strings, memory set by the row count."""

from __future__ import annotations

import hashlib
import random
import tracemalloc

from medtune.data.digest import DIGEST_BYTES, TextDigests, text_digest
from medtune.data.parallel import Pair
from medtune.data.validate import validate_pairs


def test_text_digest_is_length_prefixed_blake2b():
    expected = hashlib.blake2b(digest_size=16)
    for part in ("Wash your hands.", "Lávese las manos."):
        encoded = part.encode("utf-8")
        expected.update(len(encoded).to_bytes(8, "little") + encoded)
    assert text_digest("Wash your hands.", "Lávese las manos.") == expected.digest()
    assert len(text_digest("x")) == DIGEST_BYTES
    # A plain separator would make these collide; the length prefix keeps them apart.
    assert text_digest("a\x1fb", "c") != text_digest("a", "b\x1fc")
    assert text_digest("ab", "c") != text_digest("a", "bc")


def test_text_digests_answer_like_a_set_of_strings():
    rng = random.Random(0)
    words = ["fever", "fiebre", "dose", "dosis", " ", "ñ", "\x1f"]
    texts = ["".join(rng.choices(words, k=rng.randint(0, 6))) for _ in range(400)]
    stored, probes = texts[:200], texts[200:]
    digests, plain = TextDigests(stored), set(stored)
    assert len(digests) == len(plain)
    assert [t in digests for t in probes] == [t in plain for t in probes]
    extra = TextDigests(probes)
    both = digests.union(extra)
    assert len(both) == len(plain | set(probes))
    assert all(t in both for t in texts)
    assert 3 not in digests  # not a string: never a member


def test_validate_pairs_same_result_with_digests_as_with_strings():
    rng = random.Random(1)
    sources = [f"Take {n} tablets with water." for n in range(30)]
    pairs = [
        Pair(src, f"Tome {src.split()[1]} comprimidos con agua.", origin=f"f.jsonl:{i + 1}")
        for i, src in enumerate(rng.choices(sources, k=120))
    ]
    test_sources = set(rng.sample(sources, 5))
    by_strings = validate_pairs(pairs, "train", exclude_sources=test_sources)
    by_digests = validate_pairs(pairs, "train", exclude_sources=TextDigests(test_sources))
    assert by_digests[0] == by_strings[0]
    assert by_digests[1].to_dict() == by_strings[1].to_dict()
    counts = by_digests[1].counts
    assert counts["duplicate"] + counts["test_overlap"] + len(by_digests[0]) == 120
    assert len(by_digests[0]) == len(set(sources) - test_sources)


def test_digest_memory_does_not_grow_with_text_length():
    """1,000 texts of 10,000 characters (10 MB) are remembered in well under 1% of that."""
    texts = [f"{i:05d}" + "x" * 9_995 for i in range(1_000)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    digests = TextDigests(texts)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(digests) == 1_000
    assert held < 100_000, f"{held} bytes held for 1,000 digests"
