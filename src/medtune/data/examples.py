"""Tokenised training examples: token ids plus the labels that carry the loss."""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100  # label value that the loss skips (prompt, padding, non-assistant turns)


@dataclass
class Example:
    """One token sequence.

    ``labels`` has the length of ``input_ids`` for causal LMs (``IGNORE`` where no loss is taken)
    and is the separate target sequence for seq2seq models. ``position_ids`` is set only for
    packed blocks, where it restarts at 0 at each document so attention stays inside documents.
    """

    input_ids: list[int]
    labels: list[int]
    position_ids: list[int] | None = None

    @property
    def n_target(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)

    @property
    def length(self) -> int:
        return max(len(self.input_ids), len(self.labels))
