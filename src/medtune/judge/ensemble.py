"""The ``ensemble`` judge: a weighted mean of other judges' overall scores."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from medtune.judge.base import Judge, JudgeItem, Judgment, failed_judgment
from medtune.judge.reference import parse_weights


class EnsembleJudge:
    """Scores with every member judge and combines their overall scores with ``weights``.

    Criteria: each member's overall score under its name, and its criteria as ``member.criterion``.
    An item that any member fails on fails too (naming the member): a partial score is never passed off as whole.
    """

    name = "ensemble"

    def __init__(self, members: dict[str, Judge], weights: dict[str, float]):
        self.members = dict(members)
        self.weights = parse_weights(weights, tuple(self.members), option="ensemble weights")
        self.batch_size = min(getattr(judge, "batch_size", 16) for judge in self.members.values())

    def fingerprint(self) -> str:
        """Changes with any member's fingerprint or the weights."""
        settings = [self.name, self.weights, {n: j.fingerprint() for n, j in self.members.items()}]
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]

    def score(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        """One combined judgment per item, in order."""
        per_member = {name: judge.score(items) for name, judge in self.members.items() if self.weights.get(name, 0) > 0}
        combined = []
        for index, item in enumerate(items):
            parts = {name: judgments[index] for name, judgments in per_member.items()}
            failed = [f"{name}: {j.failed}" for name, j in parts.items() if j.score is None]
            if failed:
                combined.append(failed_judgment(item.id, "; ".join(failed)))
                continue
            score = sum(self.weights[name] * j.score for name, j in parts.items())
            criteria: dict[str, float] = {}
            for name, judgment in parts.items():
                criteria[name] = judgment.score
                criteria.update({f"{name}.{c}": v for c, v in judgment.criteria.items()})
            rationale = " | ".join(f"{name}: {j.rationale}" for name, j in parts.items())
            flags = tuple(dict.fromkeys(f for j in parts.values() for f in j.flags))
            combined.append(Judgment(item.id, round(score, 6), criteria, rationale, flags=flags))
        return combined
