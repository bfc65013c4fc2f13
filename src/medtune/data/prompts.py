"""Prompt formats. The same format is used to train, to evaluate and to serve a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from medtune.data.parallel import Pair

if TYPE_CHECKING:
    from medtune.data.mcq import MCQItem

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


ANSWER_PREFIX = "Answer:"
MCQ_INSTRUCTION = "Answer with the letter of the correct option."


def mcq_user_message(item: MCQItem, context: str | None = None) -> str:
    """The user turn that asks one multiple-choice question (shared by qa-sft training and evaluation).

    ``Context: ...`` (when the item has one) and a blank line, ``Question: ...``, one ``A. text`` line
    per option, then the instruction. ``context`` replaces the item's own context (evaluation passes
    a left-truncated one when the prompt would not fit the model's window).
    """
    context = item.context if context is None else context
    lines = [question_user_message(item.question, context)]
    lines += [f"{letter}. {text}" for letter, text in item.options.items()]
    lines.append(MCQ_INSTRUCTION)
    return "\n".join(lines)


def question_user_message(question: str, context: str | None = None) -> str:
    """The user turn that asks a free-text question: ``Context: ...`` and a blank line (when given), ``Question: ...``."""
    lines = [f"Context: {context}", ""] if context else []
    lines.append(f"Question: {question}")
    return "\n".join(lines)


def mcq_answer_text(item: MCQItem) -> str:
    """The assistant turn: ``Answer: C. <option text>``, then ``Explanation: ...`` when the item has one."""
    text = f"{ANSWER_PREFIX} {item.answer}. {item.options[item.answer]}"
    return f"{text}\nExplanation: {item.explanation}" if item.explanation else text


def mcq_to_messages(item: MCQItem, system: str | None = None) -> list[dict[str, str]]:
    """One question as chat messages: optional system turn, the user question, the assistant answer."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": mcq_user_message(item)})
    messages.append({"role": "assistant", "content": mcq_answer_text(item)})
    return messages
