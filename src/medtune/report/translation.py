"""The before/after report of a translation run: report.html, report.md and the model card."""

from __future__ import annotations

import html
import json
from pathlib import Path

from medtune.recipes.schema import Recipe
from medtune.report.before_after import paired_outputs
from medtune.report.formatting import REPORT_CSS, MetricRow, format_delta, format_value
from medtune.report.model_card import model_card
from medtune.report.plots import before_after_bars
from medtune.runs import RunFolder

# (label, split, metric, higher is better)
METRIC_ROWS = [
    ("medical chrF++", "test", "chrf", True),
    ("medical BLEU", "test", "bleu", True),
    ("medical TER", "test", "ter", False),
    ("medical term accuracy (%)", "test", "term_accuracy", True),
    ("general chrF++", "general", "chrf", True),
    ("general BLEU", "general", "bleu", True),
    ("general TER", "general", "ter", False),
]


def _value(result: dict, split: str, key: str) -> float | None:
    value = result.get(split, {}).get(key)
    if value is None:
        return None
    return value * 100 if key == "term_accuracy" else value


def forgetting_verdict(base: dict, tuned: dict, threshold: float) -> dict:
    """Whether general-domain chrF dropped by more than ``threshold`` points."""
    before, after = _value(base, "general", "chrf"), _value(tuned, "general", "chrf")
    if before is None or after is None:
        return {"checked": False, "message": "No general-domain set: forgetting was not checked."}
    drop = before - after
    forgot = drop > threshold
    message = (
        f"FORGETTING: general-domain chrF fell by {drop:.2f} points (threshold {threshold})."
        if forgot
        else f"No forgetting: general-domain chrF changed by {after - before:+.2f} points (threshold: a drop of {threshold})."
    )
    return {"checked": True, "drop": round(drop, 4), "threshold": threshold, "forgetting": forgot, "message": message}


def _samples(run: RunFolder, n: int) -> list[dict]:
    pairs = paired_outputs(run, "test", "outputs.jsonl")
    if n == 0 or not pairs:
        return []
    step = max(1, len(pairs) // n)
    return [
        {
            "source": b["source"],
            "reference": b["reference"],
            "base": b["output"],
            "tuned": t["output"],
            "base_chrf": b["chrf"],
            "tuned_chrf": t["chrf"],
        }
        for b, t in pairs[::step][:n]
    ]


def write_translation_report(recipe: Recipe, run: RunFolder, data, base: dict, tuned: dict, model_dir: Path) -> dict:
    """Write report.html, report.md and summary.json in the run folder, and README.md in the model folder."""
    rows = [(label, key, _value(base, split, key), _value(tuned, split, key)) for label, split, key, _ in METRIC_ROWS]
    rows = [r for r in rows if r[2] is not None or r[3] is not None]
    verdict = forgetting_verdict(base, tuned, recipe.eval.forgetting_threshold)
    samples = _samples(run, recipe.eval.report_samples)
    train_info = run.done("train") or {}
    counts = {k: len(getattr(data, k)) for k in ("train", "dev", "test", "general")}
    summary = {
        "recipe": recipe.name,
        "model": recipe.model,
        "output_dir": str(model_dir),
        "metrics": [
            {
                "label": lab,
                "metric": key,
                "base": b,
                "tuned": t,
                "delta": None if b is None or t is None else round(t - b, 4),
            }
            for lab, key, b, t in rows
        ],
        "forgetting": verdict,
        "data": counts,
        "train": {
            k: train_info.get(k) for k in ("steps", "train_loss", "dev_loss", "target_tokens_per_s", "train_seconds")
        },
        "signatures": base.get("test", {}).get("signatures", {}),
        "report_html": str(run.sub("report.html")),
        "report_md": str(run.sub("report.md")),
    }
    chart_rows = [r for r in rows if r[1] in ("chrf", "bleu", "term_accuracy")]
    chart = before_after_bars(
        [r[0].replace("medical ", "med. ") for r in chart_rows],
        [r[2] or 0 for r in chart_rows],
        [r[3] or 0 for r in chart_rows],
        f"{recipe.name}: before vs after",
    )
    run.sub("report.html").write_text(_html(recipe, summary, rows, verdict, samples, chart), encoding="utf-8")
    run.sub("report.md").write_text(_markdown(recipe, summary, rows, verdict, samples), encoding="utf-8")
    run.sub("summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    better = {label: hb for label, _, _, hb in METRIC_ROWS}
    card_rows = [MetricRow(label, key, b, t, better[label]) for label, key, b, t in rows]
    (model_dir / "README.md").write_text(model_card(recipe, card_rows, counts), encoding="utf-8")
    return summary


def _markdown(recipe: Recipe, summary: dict, rows, verdict: dict, samples: list[dict]) -> str:
    better = {label: hb for label, _, _, hb in METRIC_ROWS}
    lines = [
        f"# medtune report: {recipe.name}",
        "",
        f"Base model `{recipe.model}`; fine-tuned model in `{summary['output_dir']}`.",
        "",
        "| metric | base (few-shot) | fine-tuned | delta |",
        "|---|---:|---:|---:|",
    ]
    for label, _key, b, t in rows:
        lines.append(f"| {label} | {format_value(b)} | {format_value(t)} | {format_delta(b, t, better[label])[0]} |")
    lines += [
        "",
        f"**{verdict['message']}**",
        "",
        "Signatures: " + "; ".join(summary["signatures"].values()),
        "",
        "## Sample translations",
        "",
        "| source | reference | base | fine-tuned |",
        "|---|---|---|---|",
    ]
    cell = lambda s: s.replace("|", "\\|")  # noqa: E731
    for s in samples:
        lines.append(f"| {cell(s['source'])} | {cell(s['reference'])} | {cell(s['base'])} | {cell(s['tuned'])} |")
    lines += ["", "Outputs need review by a qualified medical translator before clinical use.", ""]
    return "\n".join(lines)


def _html(recipe: Recipe, summary: dict, rows, verdict: dict, samples: list[dict], chart: str) -> str:
    e = html.escape
    better = {label: hb for label, _, _, hb in METRIC_ROWS}
    metric_rows = ""
    for label, _key, b, t in rows:
        delta, cls = format_delta(b, t, better[label])
        metric_rows += f"<tr><td>{e(label)}</td><td>{format_value(b)}</td><td>{format_value(t)}</td><td class='{cls}'>{delta}</td></tr>"
    sample_rows = "".join(
        f"<tr><td>{e(s['source'])}</td><td>{e(s['reference'])}</td><td>{e(s['base'])}<br><small>chrF {s['base_chrf']:.1f}</small></td>"
        f"<td>{e(s['tuned'])}<br><small>chrF {s['tuned_chrf']:.1f}</small></td></tr>"
        for s in samples
    )
    t = summary["train"]
    verdict_cls = "bad" if verdict.get("forgetting") else "good"
    sigs = "<br>".join(e(s) for s in summary["signatures"].values())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medtune report: {e(recipe.name)}</title>
<style>
{REPORT_CSS}
</style></head><body>
<h1>medtune report: {e(recipe.name)}</h1>
<p>Base model <code>{e(recipe.model)}</code> (scored with {recipe.eval.few_shot}-shot prompts) vs the fine-tuned model in
<code>{e(summary["output_dir"])}</code> (zero-shot). Data: {summary["data"]["train"]} training, {summary["data"]["test"]} test and
{summary["data"]["general"]} general-domain pairs.</p>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>base</th><th>fine-tuned</th><th>delta</th></tr>{metric_rows}</table>
<img alt="bar chart of metrics before and after fine-tuning" src="{chart}">
<h2>Forgetting check</h2><p class="verdict {verdict_cls}">{e(verdict["message"])}</p>
<h2>Training</h2><p>{t.get("steps")} steps, final train loss {format_value(t.get("train_loss"))}, dev loss {format_value(t.get("dev_loss"))},
{format_value(t.get("target_tokens_per_s"))} target tokens/s, {format_value(t.get("train_seconds"))} s.</p>
<h2>Sample translations (test set)</h2>
<table><tr><th>source</th><th>reference</th><th>base</th><th>fine-tuned</th></tr>{sample_rows}</table>
<p><small>{sigs}</small></p>
<p><strong>Outputs need review by a qualified medical translator before clinical use.</strong></p>
</body></html>
"""
