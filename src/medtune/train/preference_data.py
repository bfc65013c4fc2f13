"""Preference pairs as token sequences: the prompt with the chosen answer, and with the rejected one.

A pair becomes two :class:`~medtune.data.examples.Example` s that share the prompt and differ in the
answer, encoded exactly as the task trains and generates:

* translation, causal LM: medtune's translation prompt (``English: <src>\\nSpanish:``) with the answer
  as the target (``" <translation>\\n"``), labels on the answer only (:func:`encode_causal`);
* translation, seq2seq (Marian): the source as encoder input, the answer as the target;
* chat and qa: the prompt turns (plus ``data.system_prompt`` when the prompt has no system turn) and the
  answer as the final assistant turn, rendered with the chat template; labels on that final turn only,
  end-of-turn token included (the same mask chat SFT trains).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medtune.data.chat_template import encode_conversation, ensure_chat_template
from medtune.data.examples import IGNORE, Example
from medtune.data.preference import PreferencePair
from medtune.data.prompts import translation_prompt, translation_target
from medtune.errors import MedtuneError
from medtune.train.batching import encode_causal, encode_seq2seq
from medtune.train.objectives import PairExample
from medtune.train.sft import EncodingReport

UNLIMITED = 10**9


@dataclass(frozen=True)
class PairEncoding:
    """How a task's pairs become token sequences."""

    task: str  # translation, chat or qa
    seq2seq: bool
    max_length: int
    src_lang: str = "en"
    tgt_lang: str = "es"
    system_prompt: str | None = None


def encode_preference_pairs(
    tokenizer, pairs: Sequence[PreferencePair], how: PairEncoding, on_bad_rows: str = "skip", required: bool = True
) -> tuple[list[PairExample], list[int], EncodingReport]:
    """Encode pairs for training or scoring.

    Args:
        tokenizer: the model's tokenizer.
        pairs: validated pairs.
        how: task, model kind and length limit (longer sequences are cut at the end and counted).
        on_bad_rows: ``fail`` refuses the first pair that cannot be encoded; ``skip`` counts it.
        required: raise when no pair is left.
    Returns:
        The encoded pairs, the index in ``pairs`` of each, and a report (encoded, truncated, skipped).
    Raises:
        MedtuneError: a translation pair whose prompt is chat messages; a prompt the chat template
            cannot render or an answer cut away entirely by ``max_length`` (with ``fail``); nothing left
            (with ``required``).
    """
    if how.task != "translation":
        ensure_chat_template(tokenizer)
    report = EncodingReport(unit="pairs")
    encoded: list[PairExample] = []
    kept: list[int] = []
    for index, pair in enumerate(pairs):
        try:
            sides = [_encode_answer(tokenizer, pair.prompt, answer, how) for answer in (pair.chosen, pair.rejected)]
        except MedtuneError as exc:
            reason = f"{pair.origin or pair.id}: {exc}"
        else:
            if all(example.n_target for example, _ in sides):
                report.encoded += 1
                report.truncated += any(cut for _, cut in sides)
                encoded.append(PairExample(sides[0][0], sides[1][0]))
                kept.append(index)
                continue
            reason = f"{pair.origin or pair.id}: no answer token within train.max_length={how.max_length}"
        if on_bad_rows == "fail":
            raise MedtuneError(f"{reason}. Fix the row, or set data.on_bad_rows=skip to drop it with a report.")
        report.skipped.append(reason)
    if required and pairs and not encoded:
        raise MedtuneError(
            f"No preference pair could be encoded ({report.summary('pairs')}). Raise train.max_length or check the data."
        )
    return encoded, kept, report


def _encode_answer(tokenizer, prompt: str | list[dict], answer: str, how: PairEncoding) -> tuple[Example, bool]:
    """(the example, whether it was cut to ``how.max_length``)."""
    if how.task == "translation":
        if not isinstance(prompt, str):
            raise MedtuneError("a translation pair's prompt must be the source sentence (text), not chat messages")
        if how.seq2seq:
            full = encode_seq2seq(tokenizer, prompt, answer, UNLIMITED)
            cut = encode_seq2seq(tokenizer, prompt, answer, how.max_length)
        else:
            text, target = translation_prompt(prompt, how.src_lang, how.tgt_lang), translation_target(answer)
            full = encode_causal(tokenizer, text, target, UNLIMITED)
            cut = encode_causal(tokenizer, text, target, how.max_length)
        return cut, full.length > cut.length
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
    if how.system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": how.system_prompt})
    full = _final_turn_only(
        encode_conversation(tokenizer, [*messages, {"role": "assistant", "content": answer}], UNLIMITED)
    )
    cut = Example(full.input_ids[: how.max_length], full.labels[: how.max_length])
    return cut, full.length > cut.length


def _final_turn_only(example: Example) -> Example:
    """Keep the labels of the last assistant turn (the answer); earlier assistant turns are prompt."""
    labels = list(example.labels)
    end = max(i for i, label in enumerate(labels) if label != IGNORE)
    start = end
    while start > 0 and labels[start - 1] != IGNORE:
        start -= 1
    return Example(example.input_ids, [IGNORE] * start + labels[start:])
