"""How reports show numbers: one metric row type, value/delta/interval formatting, the shared page style."""

from __future__ import annotations

import html
from dataclasses import dataclass

# The one stylesheet of medtune's HTML reports (translation and before/after).
REPORT_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;margin:1em 0} td,th{border:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
th{background:#f3f5f7} .good{color:#17803d;font-weight:600} .bad{color:#b42318;font-weight:600}
.verdict{padding:.8em;border-radius:6px;background:#f6f8fa} small{color:#666} code{background:#f3f5f7;padding:1px 4px}"""


@dataclass
class MetricRow:
    """One metric measured on the base and on the fine-tuned model (None: not measured)."""

    label: str  # e.g. "test perplexity (assistant tokens)", "MCQ accuracy, log-likelihood (%)"
    key: str  # e.g. "perplexity", "accuracy_loglik"
    base: float | None
    tuned: float | None
    higher_is_better: bool
    base_ci: tuple[float, float] | None = None  # 95% interval, same unit as the value
    tuned_ci: tuple[float, float] | None = None

    @property
    def delta(self) -> float | None:
        """``tuned - base``, or None when either is missing."""
        return None if self.base is None or self.tuned is None else self.tuned - self.base


def format_value(value: float | None) -> str:
    """A metric value with two decimals; ``-`` for a value that was not measured."""
    return "-" if value is None else f"{value:.2f}"


def format_delta(before: float | None, after: float | None, higher_better: bool) -> tuple[str, str]:
    """The signed change and its CSS class (``good``/``bad`` given the metric's direction); blanks when unknown."""
    if before is None or after is None:
        return "", ""
    d = after - before
    good = d >= 0 if higher_better else d <= 0
    return f"{d:+.2f}", "good" if good else "bad"


def format_interval(interval: tuple[float, float] | None) -> str:
    """A 95% interval as ``[lo, hi]`` with two decimals; empty when there is none."""
    return "" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def format_value_with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    """``12.34 [11.00, 13.50]`` in plain text (Markdown, model cards); just the value without an interval."""
    return f"{format_value(value)} {format_interval(interval)}".rstrip()


def markdown_cell(text: object) -> str:
    """Text made safe for one Markdown table cell: pipes escaped, HTML escaped, newlines as ``<br>``."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", "<br>")


def markdown_metric_table(rows: list[MetricRow], first_header: str = "metric") -> list[str]:
    """Markdown lines of a base / fine-tuned / delta table, intervals after the values."""
    lines = [f"| {first_header} | base | fine-tuned | delta |", "|---|---:|---:|---:|"]
    for row in rows:
        delta = format_delta(row.base, row.tuned, row.higher_is_better)[0]
        base = format_value_with_interval(row.base, row.base_ci)
        tuned = format_value_with_interval(row.tuned, row.tuned_ci)
        lines.append(f"| {markdown_cell(row.label)} | {base} | {tuned} | {delta} |")
    return lines
