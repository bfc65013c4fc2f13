"""The before/after report of a chat, qa or pretrain run: report.html, report.md, summary.json, model card.

A task's report module measures and picks what to show (metric rows, samples, notes); this module
lays it out the same way for every task.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

from medtune.data.io import read_jsonl
from medtune.recipes.schema import Recipe
from medtune.report.formatting import (
    REPORT_CSS,
    MetricRow,
    format_delta,
    format_interval,
    format_value,
    markdown_cell,
    markdown_metric_table,
)
from medtune.report.model_card import TASK_CAUTION, model_card, task_title
from medtune.report.plots import metric_bars, training_curve
from medtune.runs import RunFolder

__all__ = ["MetricRow", "write_before_after_report", "train_figures"]

# (label, key in the train record, how it is shown), in the order the report lists them.
TRAIN_FIGURES = [
    ("optimizer steps", "steps", "{:,}".format),
    ("final train loss", "train_loss", format_value),
    ("final dev loss", "dev_loss", format_value),
    ("trained (target) tokens", "target_tokens", "{:,}".format),
    ("trained tokens per second", "target_tokens_per_s", format_value),
    ("padding waste", "padding_waste", lambda v: f"{100 * v:.1f}%"),
    ("training seconds", "train_seconds", format_value),
    ("trainable / total parameters", "trainable_params", None),  # shown with total_params
]


def train_figures(record: dict | None) -> dict:
    """The training figures a report shows, from ``run.done("train")`` (missing ones are None)."""
    record = record or {}
    keys = [key for _, key, _ in TRAIN_FIGURES] + ["total_params"]
    return {key: record.get(key) for key in keys}


def _train_lines(figures: dict) -> list[tuple[str, str]]:
    lines = []
    for label, key, show in TRAIN_FIGURES:
        value = figures.get(key)
        if key == "trainable_params":
            total = figures.get("total_params")
            text = "-" if value is None else f"{value:,} / {total:,}" if total else f"{value:,}"
        else:
            text = "-" if value is None else show(value)
        lines.append((label, text))
    return lines


def _chart_groups(rows: Sequence[MetricRow]) -> list[list[MetricRow]]:
    """Rows that share a scale share a chart: every percentage together, otherwise one chart per metric key."""
    groups: dict[str, list[MetricRow]] = {}
    for row in rows:
        if row.base is None and row.tuned is None:
            continue  # nothing to draw
        groups.setdefault("%" if row.label.endswith("(%)") else row.key, []).append(row)
    return list(groups.values())


def _chart_title(group: list[MetricRow]) -> str:
    direction = "higher" if group[0].higher_is_better else "lower"
    name = "accuracy (%)" if len(group) > 1 and group[0].label.endswith("(%)") else group[0].label
    return f"{name}: {direction} is better"


def _chart_label(row: MetricRow) -> str:
    return row.label.removesuffix(" (%)").split(", ")[-1][:28]


def _charts(rows: Sequence[MetricRow], figures_record: dict) -> list[tuple[str, str]]:
    """(alt text, data URI) of one chart per metric group, then the training curve when there is one."""
    charts = []
    for group in _chart_groups(rows):
        uri = metric_bars(
            [_chart_label(r) for r in group] if len(group) > 1 else [""],  # one metric: its title names it
            [r.base for r in group],
            [r.tuned for r in group],
            _chart_title(group),
            [r.base_ci for r in group],
            [r.tuned_ci for r in group],
        )
        charts.append((f"bar chart: {_chart_title(group)}, base vs fine-tuned", uri))
    curve = training_curve(
        figures_record.get("loss_history") or [], figures_record.get("dev_history") or [], "training curve"
    )
    if curve is not None:
        charts.append(("training curve: train loss per step and dev loss", curve))
    return charts


def _percent(group: dict) -> float | None:
    return None if group.get("accuracy") is None else 100 * group["accuracy"]


def _breakdown_rows(breakdown: dict[str, dict[str, dict]]) -> list[tuple[str, int | None, float | None, float | None]]:
    """(subject, n, base %, fine-tuned %) per subject; accuracies arrive as fractions (evaluate_mcq's per_subject)."""
    base, tuned = breakdown.get("base", {}), breakdown.get("tuned", {})
    rows = []
    for subject in sorted(set(base) | set(tuned)):
        b, t = base.get(subject, {}), tuned.get(subject, {})
        rows.append((subject, b.get("n", t.get("n")), _percent(b), _percent(t)))
    return rows


def write_before_after_report(
    recipe: Recipe,
    run: RunFolder,
    model_dir: Path,
    rows: list[MetricRow],
    *,
    intro: str,
    counts: dict[str, int],
    samples: Sequence[dict[str, str]] = (),
    sample_columns: Sequence[tuple[str, str]] = (),
    breakdown: dict[str, dict[str, dict]] | None = None,
    notes: Sequence[str] = (),
) -> dict:
    """Write report.html, report.md and summary.json in the run folder, and README.md in ``model_dir``.

    Args:
        recipe: the run's recipe (name, task, base model, data).
        run: the run folder; its ``train`` record supplies the training figures and the loss curve.
        model_dir: the trained model's folder (gets the model card).
        rows: metrics of the base and the fine-tuned model; None values show as ``-``.
        intro: one paragraph on what was compared and how.
        counts: data set sizes by split name.
        samples: rows shown side by side; ``sample_columns`` gives their (key, header) columns in order
            (default: the first sample's keys).
        breakdown: optional per-subject accuracies ``{"base": {subject: {"accuracy": fraction, "n": int}},
            "tuned": {...}}``.
        notes: extra lines shown before the closing caution.
    Returns:
        The summary written to summary.json.
    Raises:
        MedtuneError: the recipe's base model cannot be resolved (for the model card).
    """
    record = run.done("train") or {}
    columns = list(sample_columns) or [(key, key) for key in (samples[0] if samples else {})]
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "model": recipe.model,
        "output_dir": str(model_dir),
        "metrics": [
            {
                "label": r.label,
                "metric": r.key,
                "base": r.base,
                "tuned": r.tuned,
                "delta": None if r.delta is None else round(r.delta, 4),
                "higher_is_better": r.higher_is_better,
                "base_ci": None if r.base_ci is None else list(r.base_ci),
                "tuned_ci": None if r.tuned_ci is None else list(r.tuned_ci),
            }
            for r in rows
        ],
        "data": dict(counts),
        "train": train_figures(record),
        "notes": list(notes),
        "report_html": str(run.sub("report.html")),
        "report_md": str(run.sub("report.md")),
    }
    page = _Page(recipe, summary, rows, intro, list(samples), columns, breakdown)
    run.sub("report.html").write_text(page.html(_charts(rows, record)), encoding="utf-8")
    run.sub("report.md").write_text(page.markdown(), encoding="utf-8")
    run.sub("summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "README.md").write_text(model_card(recipe, rows, counts, evaluation=intro), encoding="utf-8")
    return summary


class _Page:
    """The report's content, rendered once as HTML and once as Markdown."""

    def __init__(
        self,
        recipe: Recipe,
        summary: dict,
        rows: list[MetricRow],
        intro: str,
        samples: list[dict[str, str]],
        columns: list[tuple[str, str]],
        breakdown: dict[str, dict[str, dict]] | None,
    ):
        self.recipe, self.summary, self.rows, self.intro = recipe, summary, rows, intro
        self.samples, self.columns, self.breakdown = samples, columns, breakdown
        self.title = f"medtune report: {recipe.name}"
        self.caution = TASK_CAUTION[recipe.task]
        self.data_line = ", ".join(f"{n} {name}" for name, n in summary["data"].items())

    def html(self, charts: list[tuple[str, str]]) -> str:
        e = html.escape
        metric_rows = "".join(
            f"<tr><td>{e(r.label)}</td><td>{_html_value(r.base, r.base_ci)}</td>"
            f"<td>{_html_value(r.tuned, r.tuned_ci)}</td><td class='{cls}'>{delta}</td></tr>"
            for r in self.rows
            for delta, cls in [format_delta(r.base, r.tuned, r.higher_is_better)]
        )
        images = "".join(f'<img alt="{e(alt)}" src="{uri}">' for alt, uri in charts)
        train = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in _train_lines(self.summary["train"]))
        parts = [
            f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(self.title)}</title>',
            f"<style>\n{REPORT_CSS}\n.charts img{{margin:.3em;vertical-align:top}} .sample td{{white-space:pre-wrap}}"
            "\n</style></head><body>",
            f"<h1>{e(self.title)}</h1>",
            f"<p>Task <strong>{e(task_title(self.recipe))}</strong>: base model <code>{e(self.recipe.model)}</code> "
            f"vs the fine-tuned model in <code>{e(self.summary['output_dir'])}</code>.</p>",
            f"<p>{e(self.intro)}</p>",
            f"<p>Data: {e(self.data_line)}.</p>",
            "<h2>Metrics</h2>",
            f"<table><tr><th>metric</th><th>base</th><th>fine-tuned</th><th>delta</th></tr>{metric_rows}</table>",
            "<p><small>Intervals in brackets are 95% confidence intervals.</small></p>"
            if any(r.base_ci or r.tuned_ci for r in self.rows)
            else "",
            f'<div class="charts">{images}</div>',
        ]
        if self.breakdown:
            body = "".join(
                f"<tr><td>{e(s)}</td><td>{'-' if n is None else n}</td><td>{format_value(b)}</td>"
                f"<td>{format_value(t)}</td><td class='{cls}'>{d}</td></tr>"
                for s, n, b, t in _breakdown_rows(self.breakdown)
                for d, cls in [format_delta(b, t, True)]
            )
            parts += [
                "<h2>Accuracy per subject (%)</h2>",
                "<table><tr><th>subject</th><th>questions</th><th>base</th><th>fine-tuned</th><th>delta</th></tr>"
                f"{body}</table>",
            ]
        parts += ["<h2>Training</h2>", f"<table><tr><th>figure</th><th>value</th></tr>{train}</table>"]
        if self.samples:
            head = "".join(f"<th>{e(h)}</th>" for _, h in self.columns)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(s.get(k, '')))}</td>" for k, _ in self.columns) + "</tr>"
                for s in self.samples
            )
            parts += ["<h2>Samples</h2>", f'<table class="sample"><tr>{head}</tr>{body}</table>']
        if self.summary["notes"]:
            parts += ["<h2>Notes</h2>", "<ul>" + "".join(f"<li>{e(n)}</li>" for n in self.summary["notes"]) + "</ul>"]
        parts += [f"<p><strong>{e(self.caution)}</strong></p>", "</body></html>"]
        return "\n".join(p for p in parts if p) + "\n"

    def markdown(self) -> str:
        lines = [
            f"# {self.title}",
            "",
            f"Task **{task_title(self.recipe)}**: base model `{self.recipe.model}` vs the fine-tuned model in "
            f"`{self.summary['output_dir']}`.",
            "",
            self.intro,
            "",
            f"Data: {self.data_line}.",
            "",
            "## Metrics",
            "",
            *markdown_metric_table(self.rows),
            "",
        ]
        if self.breakdown:
            lines += ["## Accuracy per subject (%)", "", "| subject | questions | base | fine-tuned | delta |"]
            lines.append("|---|---:|---:|---:|---:|")
            for s, n, b, t in _breakdown_rows(self.breakdown):
                delta = format_delta(b, t, True)[0]
                lines.append(
                    f"| {markdown_cell(s)} | {'-' if n is None else n} | {format_value(b)} | "
                    f"{format_value(t)} | {delta} |"
                )
            lines.append("")
        lines += ["## Training", "", "| figure | value |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in _train_lines(self.summary["train"])]
        lines.append("")
        if self.samples:
            lines += ["## Samples", "", "| " + " | ".join(markdown_cell(h) for _, h in self.columns) + " |"]
            lines.append("|" + "---|" * len(self.columns))
            for s in self.samples:
                lines.append("| " + " | ".join(markdown_cell(s.get(k, "")) for k, _ in self.columns) + " |")
            lines.append("")
        if self.summary["notes"]:
            lines += ["## Notes", "", *[f"- {n}" for n in self.summary["notes"]], ""]
        lines += [f"**{self.caution}**", ""]
        return "\n".join(lines)


def _html_value(value: float | None, interval: tuple[float, float] | None) -> str:
    """A value for an HTML cell, its interval small beneath it."""
    ci = format_interval(interval)
    return format_value(value) + (f"<br><small>{ci}</small>" if ci else "")


def paired_outputs(run: RunFolder, *parts: str) -> list[tuple[dict, dict]]:
    """Rows of ``eval/eval_base/<parts>`` and ``eval/eval_tuned/<parts>`` side by side (empty if either is missing)."""
    base_path, tuned_path = run.sub("eval", "eval_base", *parts), run.sub("eval", "eval_tuned", *parts)
    if not base_path.is_file() or not tuned_path.is_file():
        return []
    return list(zip(read_jsonl(base_path), read_jsonl(tuned_path), strict=True))
