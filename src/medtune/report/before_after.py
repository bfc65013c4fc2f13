"""The before/after report of every task: report.html, report.md, summary.json and the model card.

A task's report module measures and picks what to show (metric rows with their paired deltas,
samples, checks such as forgetting, notes); this module lays it out the same way for every task:
base few-shot, base zero-shot and fine-tuned side by side, each delta with its 95% interval and
a plain verdict.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medtune.recipes.schema import Recipe
from medtune.report.comparison import Evaluations, device_line
from medtune.report.formatting import (
    BASE_NAMES,
    FEW_SHOT,
    HEADLINE_NOTE,
    TABLE_HEADERS,
    ZERO_SHOT,
    MetricRow,
    format_delta,
    format_interval,
    format_row_delta,
    format_value,
    format_verdict,
    markdown_cell,
    markdown_metric_table,
    page_start,
)
from medtune.report.model_card import TASK_CAUTION, model_card, task_title
from medtune.report.plots import BASE_COLOR, DELTA_COLOR, FEW_SHOT_COLOR, TUNED_COLOR, Bars, metric_bars, training_curve
from medtune.runs import RunFolder

__all__ = ["Check", "MetricRow", "write_before_after_report", "train_figures"]


@dataclass(frozen=True)
class Check:
    """A verdict the report states in words, e.g. the forgetting check."""

    title: str
    message: str
    passed: bool


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
        if row.base is None and row.base_zero_shot is None and row.tuned is None:
            continue  # nothing to draw
        groups.setdefault("%" if row.label.endswith("(%)") else row.key, []).append(row)
    return list(groups.values())


def _chart_title(group: list[MetricRow]) -> str:
    """``<metric>: higher/lower is better``; several test sets of one metric are named by what their labels share."""
    direction = "higher" if group[0].higher_is_better else "lower"
    if len(group) == 1:
        name = group[0].label
    elif group[0].label.endswith("(%)"):
        name = "accuracy (%)"
    else:  # "medical TER", "general TER" -> "TER"
        words = [row.label.split() for row in group]
        shared = 0
        while shared < min(map(len, words)) and len({tuple(w[len(w) - shared - 1 :]) for w in words}) == 1:
            shared += 1
        name = " ".join(words[0][len(words[0]) - shared :]) or group[0].key
    return f"{name}: {direction} is better"


def _chart_label(row: MetricRow) -> str:
    return row.label.removesuffix(" (%)").split(", ")[-1][:40]


def _charts(rows: Sequence[MetricRow], figures_record: dict) -> list[tuple[str, str]]:
    """(alt text, data URI) of one chart per metric group, then the training curve when there is one."""
    charts = []
    for group in _chart_groups(rows):
        series = [
            Bars(BASE_NAMES[FEW_SHOT], [r.base for r in group], [r.base_ci for r in group], FEW_SHOT_COLOR),
            Bars(
                BASE_NAMES[ZERO_SHOT],
                [r.base_zero_shot for r in group],
                [r.base_zero_shot_ci for r in group],
                BASE_COLOR,
            ),
            Bars("fine-tuned", [r.tuned for r in group], [r.tuned_ci for r in group], TUNED_COLOR),
        ]
        delta = Bars("delta", [r.delta for r in group], [r.delta_ci for r in group], DELTA_COLOR)
        labels = [_chart_label(r) for r in group] if len(group) > 1 else [""]  # one metric: its title names it
        uri = metric_bars(labels, series, _chart_title(group), delta)
        charts.append((f"bar chart: {_chart_title(group)}, base vs fine-tuned, deltas with 95% intervals", uri))
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


def _headline_lines(rows: Sequence[MetricRow]) -> list[str]:
    """One line per test set naming the base its deltas are measured against."""
    sets: dict[str, MetricRow] = {}
    for row in rows:
        sets.setdefault(row.test_set, row)
    return [
        f"Headline base of the {name} set: {BASE_NAMES[row.headline_base]} (the better base on {row.label})."
        for name, row in sets.items()
        if row.headline_value is not None
    ]


def write_before_after_report(
    recipe: Recipe,
    run: RunFolder,
    model_dir: Path,
    rows: list[MetricRow],
    *,
    intro: str,
    counts: dict[str, int],
    evaluations: Evaluations | None = None,
    samples: Sequence[dict[str, str]] = (),
    sample_columns: Sequence[tuple[str, str]] = (),
    breakdown: dict[str, dict[str, dict]] | None = None,
    checks: Sequence[Check] = (),
    notes: Sequence[str] = (),
    extra: dict | None = None,
) -> dict:
    """Write report.html, report.md and summary.json in the run folder, and README.md in ``model_dir``.

    Args:
        recipe: the run's recipe (name, task, base model, data).
        run: the run folder; its ``train`` record supplies the training figures and the loss curve.
        model_dir: the trained model's folder (gets the model card).
        rows: metrics of the base (few-shot and zero-shot) and the fine-tuned model, each with its
            headline base and paired delta; None values show as ``-``. The first row of each test set
            is its main metric.
        intro: one paragraph on what was compared and how.
        counts: data set sizes by split name.
        evaluations: the run's evaluations (their notes and devices are reported).
        samples: rows shown side by side; ``sample_columns`` gives their (key, header) columns in order
            (default: the first sample's keys).
        breakdown: optional per-subject accuracies ``{"base": {subject: {"accuracy": fraction, "n": int}},
            "tuned": {...}}`` (base: the headline base).
        checks: verdicts stated in words (e.g. forgetting), each under its own heading.
        notes: extra lines shown before the closing caution.
        extra: more keys for summary.json (e.g. ``forgetting``, ``signatures``).
    Returns:
        The summary written to summary.json.
    Raises:
        MedtuneError: the recipe's base model cannot be resolved (for the model card).
    """
    record = run.done("train") or {}
    columns = list(sample_columns) or [(key, key) for key in (samples[0] if samples else {})]
    devices = evaluations.devices() if evaluations else {}
    all_notes = [*_headline_lines(rows), *(evaluations.notes() if evaluations else []), *notes]
    if line := device_line(devices):
        all_notes.append(line)
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "model": recipe.model,
        "output_dir": str(model_dir),
        "metrics": [r.to_summary() for r in rows],
        **(extra or {}),
        "checks": [{"title": c.title, "message": c.message, "passed": c.passed} for c in checks],
        "evaluations": devices,
        "data": dict(counts),
        "train": train_figures(record),
        "notes": all_notes,
        "report_html": str(run.sub("report.html")),
        "report_md": str(run.sub("report.md")),
    }
    page = _Page(recipe, summary, rows, intro, list(samples), columns, breakdown, list(checks))
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
        checks: list[Check],
    ):
        self.recipe, self.summary, self.rows, self.intro = recipe, summary, rows, intro
        self.samples, self.columns, self.breakdown, self.checks = samples, columns, breakdown, checks
        self.title = f"medtune report: {recipe.name}"
        self.caution = TASK_CAUTION[recipe.task]
        self.data_line = ", ".join(f"{n} {name}" for name, n in summary["data"].items())

    def html(self, charts: list[tuple[str, str]]) -> str:
        e = html.escape
        head = "".join(f"<th>{e(h)}</th>" for h in ("metric", *TABLE_HEADERS))
        metric_rows = "".join(
            f"<tr><td>{e(r.label)}</td>{_html_base_cells(r)}<td>{_html_value(r.tuned, r.tuned_ci)}</td>"
            f"<td class='{r.delta_class}'>{_html_delta(r)}</td><td>{e(format_verdict(r))}</td></tr>"
            for r in self.rows
        )
        images = "".join(f'<img alt="{e(alt)}" src="{uri}">' for alt, uri in charts)
        train = "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in _train_lines(self.summary["train"]))
        parts = [
            page_start(self.title),
            f"<p>Task <strong>{e(task_title(self.recipe))}</strong>: base model <code>{e(self.recipe.model)}</code> "
            f"vs the fine-tuned model in <code>{e(self.summary['output_dir'])}</code>.</p>",
            f"<p>{e(self.intro)}</p>",
            f"<p>Data: {e(self.data_line)}.</p>",
            "<h2>Metrics</h2>",
            f"<table><tr>{head}</tr>{metric_rows}</table>",
            f"<p><small>{e(HEADLINE_NOTE)} Intervals beside a value are 95% intervals of the value itself.</small></p>",
            f'<div class="charts">{images}</div>',
        ]
        for check in self.checks:
            cls = "good" if check.passed else "bad"
            parts += [f"<h2>{e(check.title)}</h2>", f'<p class="verdict {cls}">{e(check.message)}</p>']
        if self.breakdown:
            body = "".join(
                f"<tr><td>{e(s)}</td><td>{'-' if n is None else n}</td><td>{format_value(b)}</td>"
                f"<td>{format_value(t)}</td><td class='{cls}'>{d}</td></tr>"
                for s, n, b, t in _breakdown_rows(self.breakdown)
                for d, cls in [format_delta(b, t, True)]
            )
            parts += [
                "<h2>Accuracy per subject (%)</h2>",
                "<table><tr><th>subject</th><th>questions</th><th>headline base</th><th>fine-tuned</th>"
                f"<th>delta</th></tr>{body}</table>",
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
            HEADLINE_NOTE,
            "",
        ]
        for check in self.checks:
            lines += [f"## {check.title}", "", f"**{check.message}**", ""]
        if self.breakdown:
            lines += ["## Accuracy per subject (%)", "", "| subject | questions | headline base | fine-tuned | delta |"]
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


def _html_value(value: float | None, interval: tuple[float, float] | None, headline: bool = False) -> str:
    """A value for an HTML cell (bold with a * when it is the headline base), its interval small beneath it."""
    ci = format_interval(interval)
    shown = f"<strong>{format_value(value)} *</strong>" if headline and value is not None else format_value(value)
    return shown + (f"<br><small>{ci}</small>" if ci else "")


def _html_base_cells(row: MetricRow) -> str:
    few = _html_value(row.base, row.base_ci, row.headline_base == FEW_SHOT)
    zero = _html_value(row.base_zero_shot, row.base_zero_shot_ci, row.headline_base == ZERO_SHOT)
    return f"<td>{few}</td><td>{zero}</td>"


def _html_delta(row: MetricRow) -> str:
    """The delta, its 95% interval small beneath it."""
    if row.delta is None:
        return ""
    text, ci = format_row_delta(row).partition(" ")[::2]
    return text + (f"<br><small>{ci}</small>" if ci else "")
