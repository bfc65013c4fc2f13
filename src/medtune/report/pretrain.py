"""Before/after report of the pretrain task, built on the shared before/after report."""

from __future__ import annotations

from pathlib import Path

from medtune.recipes.schema import Recipe
from medtune.report.before_after import Check, write_before_after_report
from medtune.report.comparison import Evaluations, joined_outputs, perplexity_delta
from medtune.report.formatting import ZERO_SHOT, MetricRow, format_interval
from medtune.runs import RunFolder

FORGETTING_RISE = 5.0  # % rise of general-domain perplexity that counts as forgetting (when significant)
SETS = (
    ("test", "medical", "held-out medical text perplexity", "perplexity"),
    ("general", "general", "general-domain text perplexity", "general_perplexity"),
)


def _samples(run: RunFolder) -> list[dict]:
    return [
        {"opening": b["opening"], "base": b["output"], "tuned": t["output"]}
        for b, t in joined_outputs(run, "eval_base", "samples.jsonl")
    ]


def pretrain_rows(run: RunFolder, evaluations: Evaluations) -> list[MetricRow]:
    """Perplexity of each scored set: the base (zero-shot; no few-shot prompt) and the adapted model."""
    rows = []
    for split, name, label, key in SETS:
        if split not in evaluations.zero_shot:
            continue
        pairs = joined_outputs(run, evaluations.stage(ZERO_SHOT), split, "outputs.jsonl")
        rows.append(
            MetricRow(
                label=label,
                key=key,
                base=None,
                tuned=evaluations.tuned[split]["perplexity"],
                higher_is_better=False,
                base_zero_shot=evaluations.zero_shot[split]["perplexity"],
                headline_base=ZERO_SHOT,
                paired=perplexity_delta(pairs),
                test_set=name,
            )
        )
    return rows


def forgetting_check(general: MetricRow) -> Check:
    """Forgetting = general-domain perplexity rose by more than 5% and the rise is significant (interval above 0)."""
    change = 100 * general.delta / general.base_zero_shot
    interval = general.delta_ci
    shown = f"{change:+.1f}% (delta {general.delta:+.3f}" + (
        f", 95% interval {format_interval(interval)})" if interval else ")"
    )
    significant_rise = interval is not None and interval[0] > 0
    if change > FORGETTING_RISE and significant_rise:
        message = f"FORGETTING: general-domain perplexity rose by {shown}: more than {FORGETTING_RISE:.0f}%, and the whole interval is above 0."
    elif change > FORGETTING_RISE:
        message = f"No forgetting shown: general-domain perplexity changed by {shown}, but the interval reaches 0, so the rise is not significant."
    else:
        message = f"No forgetting: general-domain perplexity changed by {shown}; forgetting needs a rise of more than {FORGETTING_RISE:.0f}% whose whole interval is above 0."
    return Check("Forgetting check", message, not (change > FORGETTING_RISE and significant_rise))


def write_pretrain_report(
    recipe: Recipe, run: RunFolder, counts: dict[str, int], evaluations: Evaluations, model_dir: Path
) -> dict:
    """Write report.html/.md, summary.json and the model card for a continued pre-training run."""
    rows = pretrain_rows(run, evaluations)
    test = evaluations.zero_shot["test"]
    general = next((r for r in rows if r.test_set == "general"), None)
    checks = [forgetting_check(general)] if general is not None else []
    intro = (
        f"Perplexity of the base model and of the continued pre-trained model on {counts['test']} held-out "
        f"documents ({test['n_tokens']} tokens); lower is better. Each delta's 95% interval comes from a paired "
        "bootstrap over documents. Samples continue the opening words of held-out documents greedily."
    )
    columns = [("opening", "opening"), ("base", "base continuation"), ("tuned", "adapted continuation")]
    return write_before_after_report(
        recipe,
        run,
        model_dir,
        rows,
        intro=intro,
        counts=counts,
        evaluations=evaluations,
        samples=_samples(run),
        sample_columns=columns,
        checks=checks,
        notes=[f"Method: {test['method']}."],
    )
