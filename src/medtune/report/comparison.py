"""Matched before/after comparisons: the three evaluations, each test set's headline base, paired deltas.

The base model is scored few-shot and zero-shot, the fine-tune zero-shot, all on the same items.
Each test set's deltas are measured against one base, the better of the two on the set's main
metric, and tested by a paired bootstrap (``medtune.eval.significance``) over the per-item outputs
that the evaluations wrote to ``eval/<stage>/...``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from medtune.data.io import read_jsonl
from medtune.errors import MedtuneError
from medtune.report.formatting import FEW_SHOT, ZERO_SHOT
from medtune.runs import RunFolder

TUNED = "tuned"
DEVICE_KEYS = ("device", "device_name", "dtype")


@dataclass(frozen=True)
class Evaluations:
    """A before/after run's evaluations, each the result its stage recorded in ``run.json``.

    ``few_shot`` is None for tasks without a few-shot base (perplexity). When the two bases are
    one evaluation (a seq2seq model takes no prompt, or there are no examples to show),
    ``few_shot`` and ``zero_shot`` are the same result, ``zero_shot_stage`` is ``eval_base`` and
    ``same_base_reason`` says why.
    """

    few_shot: dict | None
    zero_shot: dict
    tuned: dict
    zero_shot_stage: str = "eval_base_zero_shot"
    same_base_reason: str | None = None

    def stage(self, which: str) -> str:
        """The stage folder under ``eval/`` holding the outputs of ``few_shot``, ``zero_shot`` or ``tuned``."""
        return {FEW_SHOT: "eval_base", ZERO_SHOT: self.zero_shot_stage, TUNED: "eval_tuned"}[which]

    def notes(self) -> list[str]:
        """What a reader needs to know about how the bases were scored."""
        if self.few_shot is None:
            return ["The task has no few-shot prompt: the base model is scored zero-shot only."]
        if self.same_base_reason:
            return [f"Base few-shot and zero-shot are one evaluation: {self.same_base_reason}."]
        return []

    def devices(self) -> dict[str, dict]:
        """``device``, ``device_name`` and ``dtype`` of each evaluation, where its metrics record them."""
        found = {}
        for name, result in (("base_few_shot", self.few_shot), ("base_zero_shot", self.zero_shot), (TUNED, self.tuned)):
            info = _device_info(result or {})
            if info:
                found[name] = info
        return found


def _device_info(result: dict) -> dict:
    """The first device record in a stage result (its metrics sit one level down, per split or mode)."""
    for metrics in [result, *(v for v in result.values() if isinstance(v, dict))]:
        if any(key in metrics for key in DEVICE_KEYS):
            return {key: metrics.get(key) for key in DEVICE_KEYS}
    return {}


def device_line(devices: dict[str, dict]) -> str:
    """One sentence naming where each evaluation ran, e.g. ``Evaluated on cpu (Intel Xeon), float32.``"""
    shown = {f"{d.get('device')} ({d.get('device_name')}), {d.get('dtype')}" for d in devices.values()}
    if not shown:
        return ""
    if len(shown) == 1:
        return f"Evaluated on {shown.pop()}."
    return "Evaluated on " + "; ".join(f"{name}: {d['device']}, {d['dtype']}" for name, d in devices.items()) + "."


def headline_base(few_shot: float | None, zero_shot: float | None, higher_is_better: bool) -> str:
    """The base a test set is compared against: whichever scored better on its main metric.

    A tie (or a missing few-shot score) picks ``zero_shot``, prompted as the fine-tune is.
    """
    if few_shot is None or zero_shot is None:
        return FEW_SHOT if zero_shot is None and few_shot is not None else ZERO_SHOT
    better = few_shot > zero_shot if higher_is_better else few_shot < zero_shot
    return FEW_SHOT if better else ZERO_SHOT


def joined_outputs(run: RunFolder, base_stage: str, *parts: str) -> list[tuple[dict, dict]]:
    """Rows of ``eval/<base_stage>/<parts>`` and ``eval/eval_tuned/<parts>`` joined by ``id``.

    Returns an empty list when either file is missing (an evaluation written before per-item
    outputs existed). Rows without unique ids are paired by position.

    Raises:
        MedtuneError: the two files do not hold the same items.
    """
    base_path, tuned_path = run.sub("eval", base_stage, *parts), run.sub("eval", "eval_tuned", *parts)
    if not base_path.is_file() or not tuned_path.is_file():
        return []
    base, tuned = read_jsonl(base_path), read_jsonl(tuned_path)
    base_ids, tuned_ids = [str(r.get("id")) for r in base], [str(r.get("id")) for r in tuned]
    if len(set(base_ids)) == len(base_ids) and "None" not in base_ids:
        by_id = dict(zip(tuned_ids, tuned, strict=True))
        missing = [i for i in base_ids if i not in by_id]
        if not missing and len(by_id) == len(base_ids):
            return [(row, by_id[i]) for row, i in zip(base, base_ids, strict=True)]
    elif base_ids == tuned_ids:
        return list(zip(base, tuned, strict=True))
    raise MedtuneError(
        f"{base_path} and {tuned_path} do not hold the same items (ids differ), so they cannot be compared "
        "pair by pair; they were written from different data or by different medtune versions. Run the recipe "
        "again with --overwrite so that every evaluation scores the same items."
    )


def scaled(delta, factor: float):
    """A paired delta in another unit (e.g. fractions -> percentage points)."""
    if delta is None:
        return None
    return dataclasses.replace(
        delta, value=delta.value * factor, ci_low=delta.ci_low * factor, ci_high=delta.ci_high * factor
    )


def translation_deltas(pairs: Sequence[tuple[dict, dict]]) -> dict:
    """Paired deltas (tuned minus base) of BLEU, chrF++, TER and terminology accuracy (percentage points).

    Terminology is resampled over term occurrences; it is absent when no glossary term occurs.
    """
    from medtune.eval.significance import paired_mean_delta, paired_translation_deltas

    if not pairs:
        return {}
    deltas = dict(
        paired_translation_deltas(
            [b["output"] for b, _ in pairs], [t["output"] for _, t in pairs], [b["reference"] for b, _ in pairs]
        )
    )
    base_found = [float(term["found"]) for b, _ in pairs for term in b.get("terms", [])]
    tuned_found = [float(term["found"]) for _, t in pairs for term in t.get("terms", [])]
    if base_found and len(base_found) == len(tuned_found):
        deltas["term_accuracy"] = scaled(paired_mean_delta(base_found, tuned_found), 100)
    return deltas


def mcq_delta(pairs: Sequence[tuple[dict, dict]]):
    """Paired delta of MCQ accuracy in percentage points over per-question correctness; None without outputs."""
    from medtune.eval.significance import paired_mean_delta

    if not pairs:
        return None
    return scaled(
        paired_mean_delta([float(b["correct"]) for b, _ in pairs], [float(t["correct"]) for _, t in pairs]), 100
    )


def perplexity_delta(pairs: Sequence[tuple[dict, dict]]):
    """Paired delta of perplexity over documents/conversations; None without outputs or when the token counts differ."""
    from medtune.eval.significance import paired_perplexity_delta

    if not pairs:
        return None
    tokens = [b["tokens"] for b, _ in pairs]
    if tokens != [t["tokens"] for _, t in pairs]:
        return None  # a different tokenizer after training: not the same tokens, no paired test
    return paired_perplexity_delta([b["nll"] for b, _ in pairs], [t["nll"] for _, t in pairs], tokens)
