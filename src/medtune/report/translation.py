"""The before/after report of a translation run, laid out by the shared before/after report.

Each test set (the medical test split, the general-domain set) gets chrF++ (its main metric), BLEU,
TER and, with a glossary, terminology accuracy: the base model few-shot and zero-shot, the
fine-tune, and the delta against the set's headline base with its paired-bootstrap interval. The
forgetting check and the sacreBLEU signatures are a section and a note of that report.
"""

from __future__ import annotations

from pathlib import Path

from medtune.recipes.schema import Recipe
from medtune.report.before_after import Check, write_before_after_report
from medtune.report.comparison import Evaluations, headline_base, joined_outputs, translation_deltas
from medtune.report.formatting import BASE_NAMES, FEW_SHOT, MetricRow, format_interval
from medtune.runs import RunFolder

SETS = (("test", "medical"), ("general", "general"))  # (split, name); chrF++ decides each set's headline base
# (label, metric key, higher is better); the first is the main metric of a set
METRICS = (
    ("chrF++", "chrf", True),
    ("BLEU", "bleu", True),
    ("TER", "ter", False),
    ("term accuracy (%)", "term_accuracy", True),
)


def _value(result: dict | None, split: str, key: str) -> float | None:
    value = (result or {}).get(split, {}).get(key)
    if value is None:
        return None
    return value * 100 if key == "term_accuracy" else value


def translation_rows(run: RunFolder, evaluations: Evaluations) -> list[MetricRow]:
    """The metric rows of every test set, each set compared against its own headline base (by chrF++)."""
    rows = []
    few, zero, tuned = evaluations.few_shot, evaluations.zero_shot, evaluations.tuned
    for split, name in SETS:
        if split not in zero:
            continue
        headline = headline_base(_value(few, split, "chrf"), _value(zero, split, "chrf"), True)
        deltas = translation_deltas(joined_outputs(run, evaluations.stage(headline), split, "outputs.jsonl"))
        for label, key, higher_is_better in METRICS:
            row = MetricRow(
                label=f"{name} {label}",
                key=key,
                base=_value(few, split, key),
                tuned=_value(tuned, split, key),
                higher_is_better=higher_is_better,
                base_zero_shot=_value(zero, split, key),
                headline_base=headline,
                paired=deltas.get(key),
                test_set=name,
            )
            if row.base is not None or row.base_zero_shot is not None or row.tuned is not None:
                rows.append(row)
    return rows


def forgetting_verdict(general_chrf: MetricRow | None, threshold: float) -> dict:
    """Forgetting = the general-domain chrF++ delta is at most ``-threshold`` and its 95% interval lies below 0.

    Args:
        general_chrf: the general set's chrF++ row (its delta against the set's headline base and
            paired interval), or None without a general-domain set.
        threshold: the drop in chrF++ points that counts (``eval.forgetting_threshold``).
    Returns:
        ``checked``, ``forgetting``, ``delta``, ``ci_low``, ``ci_high``, ``threshold`` and a one-sentence ``message``.
    """
    if general_chrf is None or general_chrf.delta is None:
        return {"checked": False, "forgetting": False, "message": "No general-domain set: forgetting was not checked."}
    delta, interval = general_chrf.delta, general_chrf.delta_ci
    big_drop = delta <= -threshold
    below_zero = interval is not None and interval[1] < 0
    forgot = big_drop and below_zero
    shown = f"{delta:+.2f} points" + (f" (95% interval {format_interval(interval)})" if interval else "")
    rule = f"forgetting needs a drop of at least {threshold} points whose whole 95% interval is below 0"
    if forgot:
        message = (
            f"FORGETTING: general-domain chrF++ changed by {shown}: a drop of at least the {threshold}-point "
            "threshold, and the whole interval is below 0."
        )
    elif big_drop and interval is None:
        message = f"No forgetting shown: general-domain chrF++ changed by {shown}, but without per-sentence outputs there is no interval ({rule})."
    elif big_drop:
        message = (
            f"No forgetting shown: general-domain chrF++ changed by {shown}, at least the {threshold}-point threshold, "
            "but the interval reaches 0, so the drop is not significant."
        )
    else:
        message = f"No forgetting: general-domain chrF++ changed by {shown}; {rule}."
    return {
        "checked": True,
        "forgetting": forgot,
        "delta": round(delta, 4),
        "ci_low": None if interval is None else round(interval[0], 4),
        "ci_high": None if interval is None else round(interval[1], 4),
        "threshold": threshold,
        "message": message,
    }


def _samples(run: RunFolder, base_stage: str, n: int) -> list[dict]:
    pairs = joined_outputs(run, base_stage, "test", "outputs.jsonl")
    if n == 0 or not pairs:
        return []
    step = max(1, len(pairs) // n)
    return [
        {
            "source": b["source"],
            "reference": b["reference"],
            "base": f"{b['output']}\n(chrF++ {b['chrf']:.1f})",
            "tuned": f"{t['output']}\n(chrF++ {t['chrf']:.1f})",
        }
        for b, t in pairs[::step][:n]
    ]


def _intro(recipe: Recipe, counts: dict[str, int], evaluations: Evaluations) -> str:
    few_shot = (evaluations.few_shot or {}).get("test", {}).get("few_shot", 0)
    general = f" and the general-domain set ({counts['general']} pairs)" if counts.get("general") else ""
    return (
        f"Both models translate the held-out medical test set ({counts['test']} pairs){general}. The base model "
        f"is scored with {few_shot}-shot prompts (examples from the training split, never from a scored set) and "
        "zero-shot, the fine-tuned model zero-shot, on the same sentences. BLEU, chrF++ and TER by sacreBLEU; "
        "each delta's 95% interval and p-value by paired bootstrap resampling of sentences (terminology accuracy: "
        "of term occurrences)."
    )


def write_translation_report(recipe: Recipe, run: RunFolder, data, evaluations: Evaluations, model_dir: Path) -> dict:
    """Write report.html, report.md and summary.json in the run folder, and README.md in the model folder.

    Returns the summary: the metric rows (three columns, delta with interval and verdict), the
    forgetting verdict, the sacreBLEU signatures, data counts, training figures and paths.
    """
    rows = translation_rows(run, evaluations)
    general = next((r for r in rows if r.test_set == "general" and r.key == "chrf"), None)
    verdict = forgetting_verdict(general, recipe.eval.forgetting_threshold)
    counts = {k: len(getattr(data, k)) for k in ("train", "dev", "test", "general")}
    signatures = evaluations.zero_shot.get("test", {}).get("signatures", {})
    medical = next((r for r in rows if r.test_set == "medical"), None)
    headline = medical.headline_base if medical else FEW_SHOT
    columns = [
        ("source", "source"),
        ("reference", "reference"),
        ("base", BASE_NAMES[headline]),
        ("tuned", "fine-tuned"),
    ]
    return write_before_after_report(
        recipe,
        run,
        model_dir,
        rows,
        intro=_intro(recipe, counts, evaluations),
        counts=counts,
        evaluations=evaluations,
        samples=_samples(run, evaluations.stage(headline), recipe.eval.report_samples),
        sample_columns=columns,
        checks=[Check("Forgetting check", verdict["message"], not verdict["forgetting"])],
        notes=["sacreBLEU signatures: " + "; ".join(signatures.values())] if signatures else [],
        extra={"forgetting": verdict, "signatures": signatures},
    )
