"""The offline ``reference`` judge: MCQ correctness, similarity + key-point coverage, or sentence chrF++.

Which score an item gets depends on what it carries:
- task ``translation``: sentence chrF++ / 100 against ``reference`` (criterion ``chrf``);
- a ``gold`` letter: 1 when the answer's final chosen option is the gold one, else 0 (criterion
  ``correct``); an answer naming no option scores 0 and is flagged ``no_option``;
- a ``reference`` text: ``w_s * similarity + w_c * coverage`` (criteria ``similarity``, ``coverage``),
  default weights 0.7 / 0.3.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence

from medtune import __version__
from medtune.errors import MedtuneError
from medtune.eval.letters import extract_letter, last_cued_letter
from medtune.eval.metrics import sentence_chrf_scores
from medtune.judge.base import JudgeItem, Judgment, failed_judgment
from medtune.judge.embedding import model_version, similarities
from medtune.judge.keypoints import coverage, derive_key_points

DEFAULT_WEIGHTS = {"similarity": 0.7, "coverage": 0.3}
TASKS = ("qa", "translation")
# An option line of a multiple-choice prompt: "A. text", "B) text", "(C) text", "D: text".
_OPTION_LINE = re.compile(r"^\s*\(?([A-J])[).:]\s+(\S.*)$", re.MULTILINE)
_MAX_MISSING_SHOWN = 5


def prompt_options(prompt: str) -> dict[str, str]:
    """The ``{letter: text}`` options listed in a prompt, or ``{}`` when it lists fewer than two."""
    options = {m.group(1): m.group(2).strip() for m in _OPTION_LINE.finditer(prompt)}
    return options if len(options) >= 2 else {}


def final_option(answer: str, options: dict[str, str] | Iterable[str]) -> str | None:
    """The option an answer finally chooses, or ``None`` when it names none.

    The explicit reading of :func:`medtune.eval.letters.extract_letter` first; when that finds the
    answer ambiguous ("B... no, the answer is C"), the last explicit answer cue decides.
    """
    chosen = extract_letter(answer, options)
    return chosen if chosen is not None else last_cued_letter(answer, options)


def parse_weights(
    weights: dict[str, float] | None, known: Sequence[str], option: str = "--weights"
) -> dict[str, float]:
    """Check criterion weights (known names, >= 0, not all 0) and scale them to sum to 1.

    Raises:
        MedtuneError: an unknown name or a bad value, naming ``option``.
    """
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(known))
    if unknown:
        raise MedtuneError(f"{option}: unknown weight(s) {', '.join(unknown)}; this judge weighs {', '.join(known)}.")
    if any(not isinstance(v, int | float) or v < 0 for v in weights.values()) or (
        weights and sum(weights.values()) <= 0
    ):
        raise MedtuneError(f"{option}: weights must be numbers >= 0 that are not all 0 (got {weights}).")
    total = sum(weights.values())
    return {name: value / total for name, value in weights.items()}


class ReferenceJudge:
    """Scores answers against a gold letter or a reference text, with no judge model."""

    name = "reference"
    batch_size = 64

    def __init__(self, task: str = "qa", weights: dict[str, float] | None = None, glossary_terms: Sequence[str] = ()):
        if task not in TASKS:
            raise MedtuneError(f"--task must be one of {', '.join(TASKS)}; got '{task}'.")
        self.task = task
        self.weights = parse_weights({**DEFAULT_WEIGHTS, **(weights or {})}, tuple(DEFAULT_WEIGHTS))
        self.glossary_terms = tuple(glossary_terms)

    def fingerprint(self) -> str:
        """Changes with the task, weights, glossary, medtune's and the embedding model's versions."""
        settings = [self.name, self.task, self.weights, self.glossary_terms, __version__, model_version()]
        return hashlib.sha256(json.dumps(settings).encode("utf-8")).hexdigest()[:16]

    def score(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        """One judgment per item, in order; an item with nothing to compare against fails, saying so."""
        if self.task == "translation":
            return self._score_translations(items)
        results: list[Judgment | None] = [None] * len(items)
        free_text = []
        for index, item in enumerate(items):
            if item.gold:
                results[index] = self._score_choice(item)
            elif item.reference:
                free_text.append(index)
            else:
                results[index] = failed_judgment(item.id, "no gold letter or reference answer to judge against")
        sims = similarities([items[i].answer for i in free_text], [items[i].reference for i in free_text])
        for index, similarity in zip(free_text, sims, strict=True):
            results[index] = self._score_free_text(items[index], similarity)
        return [r for r in results if r is not None]

    def _score_choice(self, item: JudgeItem) -> Judgment:
        gold = item.gold.strip().upper()
        options = prompt_options(item.prompt) or "ABCDEFGHIJ"
        chosen = final_option(item.answer, options)
        if chosen is None:
            return Judgment(item.id, 0.0, {"correct": 0.0}, f"names no option (gold {gold})", flags=("no_option",))
        correct = float(chosen == gold)
        verdict = "correct" if correct else "wrong"
        return Judgment(item.id, correct, {"correct": correct}, f"chose {chosen}, gold {gold}: {verdict}")

    def _score_free_text(self, item: JudgeItem, similarity: float) -> Judgment:
        points = list(item.key_points) or derive_key_points(item.reference or "", self.glossary_terms)
        covered, missing = coverage(item.answer, points)
        score = self.weights["similarity"] * similarity + self.weights["coverage"] * covered
        shown = ", ".join(missing[:_MAX_MISSING_SHOWN]) + (", ..." if len(missing) > _MAX_MISSING_SHOWN else "")
        rationale = f"similarity {similarity:.2f}; key points {len(points) - len(missing)}/{len(points)}"
        rationale += f" (missing: {shown})" if missing else ""
        criteria = {"similarity": round(similarity, 6), "coverage": round(covered, 6)}
        return Judgment(item.id, round(score, 6), criteria, rationale)

    def _score_translations(self, items: Sequence[JudgeItem]) -> list[Judgment]:
        scorable = [i for i, item in enumerate(items) if item.reference]
        chrf = sentence_chrf_scores([items[i].answer for i in scorable], [items[i].reference for i in scorable])
        by_index = dict(zip(scorable, chrf, strict=True))
        results = []
        for index, item in enumerate(items):
            if index not in by_index:
                results.append(failed_judgment(item.id, "no reference translation to judge against"))
                continue
            value = by_index[index] / 100
            results.append(Judgment(item.id, value, {"chrf": value}, f"sentence chrF++ {by_index[index]:.2f}"))
        return results
