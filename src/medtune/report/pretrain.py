"""Before/after report of the pretrain task, built on the shared before/after report."""

from __future__ import annotations

from pathlib import Path

from medtune.recipes.schema import Recipe
from medtune.report.before_after import MetricRow, paired_outputs, write_before_after_report
from medtune.runs import RunFolder


def _samples(run: RunFolder) -> list[dict]:
    return [
        {"opening": b["opening"], "base": b["output"], "tuned": t["output"]}
        for b, t in paired_outputs(run, "samples.jsonl")
    ]


def write_pretrain_report(
    recipe: Recipe, run: RunFolder, counts: dict[str, int], base: dict, tuned: dict, model_dir: Path
) -> dict:
    """Write report.html/.md, summary.json and the model card for a continued pre-training run."""
    rows = [
        MetricRow(
            "held-out medical text perplexity",
            "perplexity",
            base["test"]["perplexity"],
            tuned["test"]["perplexity"],
            False,
        )
    ]
    notes = [f"Method: {base['test']['method']}."]
    if "general" in base:
        before, after = base["general"]["perplexity"], tuned["general"]["perplexity"]
        rows.append(MetricRow("general-domain text perplexity", "general_perplexity", before, after, False))
        change = 100 * (after - before) / before
        if change > 5:
            verdict = "a rise of more than 5%: some forgetting of general text"
        elif change < -5:
            verdict = "it fell: no forgetting (general English became easier too)"
        else:
            verdict = "within 5%: no sign of forgetting"
        notes.append(f"Forgetting check: general-domain perplexity changed by {change:+.1f}% ({verdict}).")
    intro = (
        f"Perplexity of the base model and of the continued pre-trained model on {counts['test']} held-out "
        f"documents ({base['test']['n_tokens']} tokens); lower is better. Samples continue the opening words "
        "of held-out documents greedily."
    )
    columns = [("opening", "opening"), ("base", "base continuation"), ("tuned", "adapted continuation")]
    return write_before_after_report(
        recipe,
        run,
        model_dir,
        rows,
        intro=intro,
        counts=counts,
        samples=_samples(run),
        sample_columns=columns,
        notes=notes,
    )
