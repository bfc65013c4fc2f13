"""The prompts an ``llm`` judge sends: a pointwise rubric (JSON scores per criterion) and a pairwise comparison."""

from __future__ import annotations

from collections.abc import Sequence

from medtune.judge.base import JudgeItem

DEFAULT_CRITERIA = {"factual_accuracy": 1.0, "completeness": 1.0, "key_point_coverage": 1.0}
DESCRIPTIONS = {
    "factual_accuracy": "every medical statement is correct and safe; nothing contradicts the reference",
    "completeness": "the answer addresses the whole question, with the detail a clinician would expect",
    "key_point_coverage": "the key points of the reference answer (or of a good answer) are stated",
}
SYSTEM = (
    "You are a careful medical expert who grades answers to medical questions. You are strict, fair and "
    "brief, and you reply with one JSON object only."
)
RETRY = "Your reply could not be read ({reason}). Reply again with only the JSON object, in exactly this shape: {shape}"
RUBRIC_VERSION = "1"  # bump when the wording below changes: it enters the judge's fingerprint


def _context(prompt: str, reference: str | None, key_points: Sequence[str], gold: str | None) -> list[str]:
    lines = ["Question:", prompt.strip(), ""]
    if gold:
        lines += [f"Correct option: {gold}", ""]
    if reference:
        lines += ["Reference answer (for grading only):", reference.strip(), ""]
    if key_points:
        lines += ["Key points a good answer states:", *[f"- {p}" for p in key_points], ""]
    return lines


def score_shape(criteria: Sequence[str]) -> str:
    """The JSON the rubric asks for, e.g. ``{"scores": {"factual_accuracy": <0-10>}, "rationale": "<...>"}``."""
    scores = ", ".join(f'"{c}": <0-10>' for c in criteria)
    return '{"scores": {' + scores + '}, "rationale": "<one or two sentences>"}'


def rubric_messages(item: JudgeItem, criteria: Sequence[str]) -> list[dict]:
    """The conversation asking for a score from 0 (worst) to 10 (best) on each criterion of one answer."""
    lines = _context(item.prompt, item.reference, item.key_points, item.gold)
    lines += [
        "Answer to grade:",
        item.answer.strip(),
        "",
        "Grade the answer from 0 (worst) to 10 (best) on each criterion:",
    ]
    lines += [f"- {c}: {DESCRIPTIONS.get(c, c.replace('_', ' '))}" for c in criteria]
    lines += ["", f"Reply with only this JSON object: {score_shape(criteria)}"]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


VERDICT_SHAPE = '{"winner": "A" or "B" or "tie", "rationale": "<one or two sentences>"}'


def pairwise_messages(
    prompt: str, first: str, second: str, reference: str | None, criteria: Sequence[str]
) -> list[dict]:
    """The conversation asking which of two answers (shown as A then B) is better on the criteria."""
    lines = _context(prompt, reference, (), None)
    lines += ["Answer A:", first.strip(), "", "Answer B:", second.strip(), ""]
    lines += ["Which answer is better, judged on: " + ", ".join(c.replace("_", " ") for c in criteria) + "?"]
    lines += ["The order of the answers says nothing about their quality.", ""]
    lines += [f"Reply with only this JSON object: {VERDICT_SHAPE}"]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def retry_messages(conversation: list[dict], reply: str, reason: str, shape: str) -> list[dict]:
    """The conversation continued with the unreadable reply and a request to answer in the right shape."""
    return [
        *conversation,
        {"role": "assistant", "content": reply},
        {"role": "user", "content": RETRY.format(reason=reason, shape=shape)},
    ]
