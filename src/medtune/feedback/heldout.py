"""Does the model prefer the reviewers' post-edits? The held-out judged items, scored before and after training.

For every held-out item whose post-edit differs from the machine translation, the margin is the post-edit's
mean per-token log-probability minus the machine translation's (the pair scoring of ``medtune eval --task
preference``: :func:`medtune.eval.preference.evaluate_preference`). A model that learnt from the feedback
should raise it. Reported per model: the mean margin with a 95% bootstrap interval and the share of items
where the post-edit is preferred; and the paired change after minus before, with its interval and p-value
(:mod:`medtune.eval.significance`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medtune.data.io import read_jsonl
from medtune.data.preference import PreferencePair
from medtune.eval.preference import evaluate_preference
from medtune.eval.significance import bootstrap_interval, paired_mean_delta
from medtune.feedback.training_data import ItemFeedback
from medtune.models.loading import LoadedModel

METHOD = (
    "margin = mean per-token log-probability of the post-edit minus that of the machine translation, on held-out "
    "judged items whose post-edit differs; 95% percentile bootstrap over items; after - before: paired bootstrap"
)


def post_edit_preference_pairs(items: Sequence[ItemFeedback]) -> list[PreferencePair]:
    """Each item with a differing post-edit as a pair: the post-edit chosen, the machine translation rejected."""
    return [
        PreferencePair(i.item_id, i.source, i.post_edit.strip(), i.translation.strip(), origin=f"item {i.item_id}")
        for i in items
        if i.post_edit is not None and i.post_edit.strip() != i.translation.strip()
    ]


def _margins(loaded: LoadedModel, pairs: list[PreferencePair], out_dir: Path, **options) -> dict[str, float]:
    evaluate_preference(loaded, pairs, out_dir, "translation", **options)
    return {row["id"]: float(row["margin"]) for row in read_jsonl(out_dir / "outputs.jsonl")}


def _summary(margins: list[float], seed: int) -> dict[str, float]:
    # bootstrap_interval resamples the mean of per-item values; 0/1 outcomes or margins alike
    low, high = bootstrap_interval(margins, seed=seed)
    return {
        "mean_margin": sum(margins) / len(margins),
        "ci_low": low,
        "ci_high": high,
        "post_edit_preferred": sum(m > 0 for m in margins) / len(margins),
    }


def evaluate_post_edit_margin(
    models: dict[str, Callable[[], LoadedModel]],
    items: Sequence[ItemFeedback],
    out_dir: Path,
    seed: int = 42,
    batch_size: int = 8,
    max_length: int = 1024,
    src_lang: str = "en",
    tgt_lang: str = "es",
    log: Callable[[str], Any] = print,
) -> dict:
    """Score the post-edit preference of each model on the held-out items.

    Args:
        models: ``{"before": load, "after": load}`` (loaded one at a time, in that order, and dropped after).
        items: the held-out judged items.
        out_dir: ``<out_dir>/<name>/`` gets each model's ``metrics.json`` and per-pair ``outputs.jsonl``.
    Returns:
        ``{"n", "method", "<name>": {mean_margin, ci_low, ci_high, post_edit_preferred}, ..., "delta": {value,
        ci_low, ci_high, p_value, ...}}`` (the delta: last model minus first); ``{"n": 0, "reason": ...}`` when
        no held-out item has a differing post-edit.
    """
    pairs = post_edit_preference_pairs(items)
    if not pairs:
        reason = f"none of the {len(items)} held-out judged items has a post-edit that differs from its translation"
        log(f"Post-edit preference: {reason}; nothing to score.")
        return {"n": 0, "reason": reason}
    options = dict(batch_size=batch_size, seed=seed, max_length=max_length, src_lang=src_lang, tgt_lang=tgt_lang)
    scored = {}
    for name, load in models.items():
        scored[name] = _margins(load(), pairs, out_dir / name, log=log, **options)
    common = sorted(set.intersection(*(set(m) for m in scored.values())))
    result: dict[str, Any] = {"n": len(common), "method": METHOD}
    for name, margins in scored.items():
        result[name] = _summary([margins[i] for i in common], seed)
    first, last = list(scored)[0], list(scored)[-1]
    if first != last:
        delta = paired_mean_delta([scored[first][i] for i in common], [scored[last][i] for i in common], seed=seed)
        result["delta"] = asdict(delta)
        log(
            f"Post-edit preference margin on {len(common)} held-out items: {first} {result[first]['mean_margin']:.4f}, "
            f"{last} {result[last]['mean_margin']:.4f} (delta {delta.value:+.4f}, 95% CI [{delta.ci_low:+.4f}, "
            f"{delta.ci_high:+.4f}], p = {delta.p_value:.3f})."
        )
    return result
