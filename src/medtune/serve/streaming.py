"""Turning tokens as they are generated into text deltas whose concatenation is the final reply.

The reply a client gets without streaming is ``final_text``: the decoded tokens, cut before the first
stop string, stripped of surrounding whitespace (as ``medtune generate`` writes it). While streaming,
text is held back until it can no longer change: an incomplete UTF-8 character, trailing whitespace
(stripped if the reply ends there) and a tail that may be the start of a stop string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from transformers.generation.streamers import BaseStreamer

from medtune.generate.engine import cut_at_stop_string


def final_text(decoded: str, stop_strings: Sequence[str]) -> str:
    """The reply as returned: cut before the first stop string, surrounding whitespace removed."""
    return cut_at_stop_string(decoded, stop_strings)[0].strip()


def settled_text(decoded: str, stop_strings: Sequence[str]) -> str:
    """The part of a still-growing reply that later tokens cannot change."""
    text, hit = cut_at_stop_string(decoded, stop_strings)
    if hit:
        return text.strip()
    held = max((k for stop in stop_strings for k in range(1, len(stop)) if text.endswith(stop[:k])), default=0)
    return text[: len(text) - held].rstrip("\ufffd").rstrip().lstrip()


class TextDeltaStreamer(BaseStreamer):
    """A transformers streamer for one sequence that calls ``on_delta(text)`` with each settled piece.

    The first ``put`` is the prompt (or a seq2seq model's decoder start) and is skipped; tokens after a
    stop token are ignored. Call :meth:`finish` with the final reply to send the rest.
    """

    def __init__(
        self, tokenizer, stop_ids: Sequence[int], stop_strings: Sequence[str], on_delta: Callable[[str], None]
    ):
        self.tokenizer = tokenizer
        self.stop_ids = set(stop_ids)
        self.stop_strings = tuple(stop_strings)
        self.on_delta = on_delta
        self.ids: list[int] = []
        self.sent = ""
        self.seen_prompt = False
        self.ended = False

    def put(self, value) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        for token in value.reshape(-1).tolist():
            if self.ended or token in self.stop_ids:
                self.ended = True
                return
            if token != self.tokenizer.pad_token_id:
                self.ids.append(token)
        self._send(settled_text(self.tokenizer.decode(self.ids, skip_special_tokens=True), self.stop_strings))

    def end(self) -> None:
        """Called by ``generate`` when it stops; the rest is sent by :meth:`finish`."""

    def finish(self, reply: str) -> None:
        """Send what of ``reply`` has not been sent yet."""
        self._send(reply)

    def _send(self, text: str) -> None:
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.on_delta(text[len(self.sent) :])
            self.sent = text
