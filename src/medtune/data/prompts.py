"""Prompt formats. The same format is used to train, to evaluate and to serve a model."""

from __future__ import annotations

from collections.abc import Sequence

from medtune.data.parallel import Pair

LANGUAGE_NAMES = {"en": "English", "es": "Spanish"}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def translation_prompt(src: str, src_lang: str = "en", tgt_lang: str = "es", examples: Sequence[Pair] = ()) -> str:
    """The causal-LM prompt for one sentence; the model continues with the translation and a newline.

    Kept short on purpose (prompt tokens dominate training cost): ``English: <src>\nSpanish:``.
    Few-shot examples come first as complete ``English: ...`` / ``Spanish: ...`` blocks.
    """
    s, t = language_name(src_lang), language_name(tgt_lang)
    lines: list[str] = []
    for ex in examples:
        lines += [f"{s}: {ex.src}", f"{t}: {ex.tgt}", ""]
    lines += [f"{s}: {src}", f"{t}:"]
    return "\n".join(lines)


def translation_target(tgt: str) -> str:
    """The text a causal LM learns after the prompt: a space, the translation, end of line."""
    return f" {tgt}\n"
