"""The ``llm`` judge: a rubric sent to a model, strict JSON parsing with repair and bounded retries.

Pointwise, each answer gets 0-10 scores per criterion (normalised to [0, 1]); the overall score is
their weighted mean. Pairwise (:meth:`LLMJudge.compare`), the model sees both answers twice, in
both orders; only verdicts that agree across the orders count, the others become ties, and the
share of agreeing verdicts is the judge's position consistency.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medtune import __version__
from medtune.judge.backends import ChatBackend
from medtune.judge.base import JudgeItem, Judgment, failed_judgment
from medtune.judge.parsing import ReplyUnreadable, parse_rubric_reply, parse_verdict_reply
from medtune.judge.reference import parse_weights
from medtune.judge.rubric import (
    DEFAULT_CRITERIA,
    RUBRIC_VERSION,
    VERDICT_SHAPE,
    pairwise_messages,
    retry_messages,
    rubric_messages,
    score_shape,
)

DEFAULT_RETRIES = 2


@dataclass(frozen=True)
class PairVerdict:
    """A pairwise verdict over both orders: ``winner`` is ``"first"``, ``"second"`` or ``"tie"``.

    ``consistent`` says whether the two orders agreed (an inconsistent verdict is a tie); ``failed``
    says why there is no verdict (then ``winner`` and ``consistent`` are ``None``).
    """

    winner: str | None
    consistent: bool | None
    rationale: str = ""
    failed: str | None = None


@dataclass
class ParseStats:
    """Replies that could not be read: re-asks sent, and the questions given up on (with the reason)."""

    retries: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (item id or pair label, reason)

    @property
    def parse_failures(self) -> int:
        return len(self.failures)


class LLMJudge:
    """Scores answers with a rubric sent to a chat model (``backend``), greedy.

    Args:
        backend: a :class:`ChatBackend` (local model or endpoint).
        criteria: criterion name -> weight (default: factual_accuracy, completeness and
            key_point_coverage, equal weights); the names are the rubric's criteria.
        retries: re-asks after an unreadable reply before the item is given up (listed, never scored).
    """

    name = "llm"
    batch_size = 16

    def __init__(self, backend: ChatBackend, criteria: dict[str, float] | None = None, retries: int = DEFAULT_RETRIES):
        self.backend = backend
        raw = dict(criteria or DEFAULT_CRITERIA)
        self.weights = parse_weights(raw, tuple(raw))
        self.criteria = tuple(self.weights)
        self.retries = retries
        self.stats = ParseStats()

    def fingerprint(self) -> str:
        """Changes with the model, the criteria and weights, the rubric's wording and medtune's version."""
        settings = [self.name, self.backend.identity, self.weights, RUBRIC_VERSION, __version__]
        return hashlib.sha256(json.dumps(settings).encode("utf-8")).hexdigest()[:16]

    def score(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        """One judgment per item; an item whose replies stay unreadable after the retries fails, listed in ``stats``."""
        conversations = [rubric_messages(item, self.criteria) for item in items]
        shape = score_shape(self.criteria)
        answers = self._ask(conversations, lambda reply: parse_rubric_reply(reply, self.criteria), shape)
        judgments = []
        for item, (parsed, reason) in zip(items, answers, strict=True):
            if parsed is None:
                self.stats.failures.append((item.id, reason))
                judgments.append(failed_judgment(item.id, reason))
                continue
            scores, rationale = parsed
            overall = sum(self.weights[c] * scores[c] for c in self.criteria)
            criteria = {c: round(v, 6) for c, v in scores.items()}
            judgments.append(Judgment(item.id, round(overall, 6), criteria, rationale))
        return judgments

    def compare(self, prompt: str, first: str, second: str, reference: str | None = None) -> PairVerdict:
        """Which of two answers is better, asked in both orders (see :meth:`compare_many`)."""
        return self.compare_many([(prompt, first, second, reference)])[0]

    def compare_many(
        self, pairs: Sequence[tuple[str, str, str, str | None]], labels: Sequence[str] | None = None
    ) -> list[PairVerdict]:
        """Pairwise verdicts for ``(prompt, first, second, reference)`` tuples, each asked as (first, second) and (second, first).

        Agreeing orders give the winner; disagreeing ones a tie (``consistent=False``). A pair with an
        unreadable reply in either order fails and is listed in ``stats`` under its label.
        """
        labels = list(labels or [f"pair {i + 1}" for i in range(len(pairs))])
        conversations = []
        for prompt, first, second, reference in pairs:
            conversations.append(pairwise_messages(prompt, first, second, reference, self.criteria))
            conversations.append(pairwise_messages(prompt, second, first, reference, self.criteria))
        answers = self._ask(conversations, parse_verdict_reply, VERDICT_SHAPE)
        verdicts = []
        for index, label in enumerate(labels):
            (straight, reason_1), (swapped, reason_2) = answers[2 * index], answers[2 * index + 1]
            if straight is None or swapped is None:
                reason = reason_1 if straight is None else reason_2
                self.stats.failures.append((label, reason))
                verdicts.append(PairVerdict(None, None, failed=reason))
                continue
            in_order = {"A": "first", "B": "second", "tie": "tie"}[straight[0]]
            reversed_order = {"A": "second", "B": "first", "tie": "tie"}[swapped[0]]
            consistent = in_order == reversed_order
            rationale = f"A/B order: {straight[1]} | B/A order: {swapped[1]}".strip()
            verdicts.append(PairVerdict(in_order if consistent else "tie", consistent, rationale))
        return verdicts

    def _ask(
        self, conversations: list[list[dict]], parse: Callable[[str], Any], shape: str
    ) -> list[tuple[Any | None, str]]:
        """Each conversation's parsed reply (or ``None``) and the last failure reason, re-asking unreadable ones."""
        results: list[tuple[Any | None, str]] = [(None, "")] * len(conversations)
        pending = list(range(len(conversations)))
        current = list(conversations)
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += len(pending)
            replies = self.backend.reply([current[i] for i in pending])
            still = []
            for index, reply in zip(pending, replies, strict=True):
                try:
                    results[index] = (parse(reply), "")
                except ReplyUnreadable as exc:
                    results[index] = (None, f"no parseable score after {attempt + 1} replies: {exc}")
                    current[index] = retry_messages(conversations[index], reply, str(exc), shape)
                    still.append(index)
            pending = still
            if not pending:
                break
        return results
