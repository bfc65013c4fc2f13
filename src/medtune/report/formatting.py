"""How reports show numbers: one metric row type, value/delta/interval formatting, the shared page style."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medtune.eval.significance import PairedDelta

# The one stylesheet of medtune's HTML reports.
REPORT_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;width:100%;margin:1em 0} td,th{border:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
th{background:#f3f5f7} .good{color:#17803d;font-weight:600} .bad{color:#b42318;font-weight:600}
.verdict{padding:.8em;border-radius:6px;background:#f6f8fa} small{color:#666} code{background:#f3f5f7;padding:1px 4px}"""


def page_start(title: str) -> str:
    """The opening of every HTML report: doctype, title, the shared style, ``<body>`` and the ``<h1>``."""
    e = html.escape
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>\n{REPORT_CSS}\n.charts img{{margin:.3em;vertical-align:top}} .sample td{{white-space:pre-wrap}}"
        f"\n</style></head><body><h1>{e(title)}</h1>"
    )


FEW_SHOT, ZERO_SHOT = "few_shot", "zero_shot"  # the two ways the base model is scored
SIGNIFICANT, NOT_SIGNIFICANT = "significant at 95%", "not significant"
BASE_NAMES = {FEW_SHOT: "base few-shot", ZERO_SHOT: "base zero-shot"}
TABLE_HEADERS = ("base few-shot", "base zero-shot", "fine-tuned", "delta vs headline base [95% CI]", "verdict")


@dataclass
class MetricRow:
    """One metric of one test set: the base model few-shot and zero-shot, the fine-tune, and the paired delta.

    The delta is the fine-tune minus the *headline* base of the test set (whichever base scored
    better on the set's main metric); ``paired`` is its paired-bootstrap interval and p-value.
    None values were not measured.
    """

    label: str  # e.g. "medical chrF++", "MCQ accuracy, log-likelihood (%)"
    key: str  # e.g. "chrf", "accuracy_loglik"
    base: float | None  # base model with few-shot prompts (None: the task has no few-shot base)
    tuned: float | None
    higher_is_better: bool
    base_ci: tuple[float, float] | None = None  # 95% interval of the value itself, same unit
    tuned_ci: tuple[float, float] | None = None
    base_zero_shot: float | None = None
    base_zero_shot_ci: tuple[float, float] | None = None
    headline_base: str = ZERO_SHOT  # FEW_SHOT or ZERO_SHOT: the base the delta is measured against
    paired: PairedDelta | None = None  # tuned minus the headline base, in the row's unit
    test_set: str = "test"  # rows of one test set share their headline base

    @property
    def headline_value(self) -> float | None:
        """The headline base's value."""
        return self.base if self.headline_base == FEW_SHOT else self.base_zero_shot

    @property
    def delta(self) -> float | None:
        """Fine-tuned minus the headline base, or None when either is missing."""
        before = self.headline_value
        return None if before is None or self.tuned is None else self.tuned - before

    @property
    def delta_ci(self) -> tuple[float, float] | None:
        return None if self.paired is None else (self.paired.ci_low, self.paired.ci_high)

    @property
    def significant(self) -> bool | None:
        """Whether the delta's 95% interval excludes 0 (None: no paired test)."""
        return None if self.paired is None else self.paired.significant

    @property
    def verdict(self) -> str:
        """``significant at 95%``, ``not significant``, or empty without a paired test."""
        if self.paired is None:
            return ""
        return SIGNIFICANT if self.paired.significant else NOT_SIGNIFICANT

    @property
    def delta_class(self) -> str:
        """CSS class of the delta: ``good``/``bad`` for a significant change (by the metric's direction), else none."""
        if self.delta is None or not self.significant:
            return ""
        return "good" if (self.delta > 0) == self.higher_is_better else "bad"

    def to_summary(self) -> dict:
        """The row as one entry of ``summary.json``'s ``metrics``."""
        pair = self.paired
        return {
            "label": self.label,
            "metric": self.key,
            "test_set": self.test_set,
            "base": self.base,
            "base_zero_shot": self.base_zero_shot,
            "headline_base": self.headline_base,
            "tuned": self.tuned,
            "delta": None if self.delta is None else round(self.delta, 4),
            "delta_ci_low": None if pair is None else round(pair.ci_low, 4),
            "delta_ci_high": None if pair is None else round(pair.ci_high, 4),
            "p_value": None if pair is None else round(pair.p_value, 4),
            "significant": self.significant,
            "verdict": self.verdict,
            "higher_is_better": self.higher_is_better,
            "base_ci": _listed(self.base_ci),
            "base_zero_shot_ci": _listed(self.base_zero_shot_ci),
            "tuned_ci": _listed(self.tuned_ci),
            "bootstrap": None if pair is None else {"n": pair.n, "resamples": pair.n_resamples, "seed": pair.seed},
        }


def _listed(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else list(interval)


def _unsigned_zero(value: float) -> float:
    """0.0 for a value that shows as zero at two decimals, so ``-0.00`` never appears."""
    return 0.0 if abs(value) < 0.005 else value


def format_value(value: float | None) -> str:
    """A metric value with two decimals; ``-`` for a value that was not measured."""
    return "-" if value is None else f"{_unsigned_zero(value):.2f}"


def format_delta(before: float | None, after: float | None, higher_better: bool) -> tuple[str, str]:
    """The signed change and its CSS class (``good``/``bad`` given the metric's direction); blanks when unknown."""
    if before is None or after is None:
        return "", ""
    d = _unsigned_zero(after - before)
    good = d >= 0 if higher_better else d <= 0
    return f"{d:+.2f}", "good" if good else "bad"


def format_interval(interval: tuple[float, float] | None) -> str:
    """A 95% interval as ``[lo, hi]`` with two decimals; empty when there is none."""
    return "" if interval is None else f"[{_unsigned_zero(interval[0]):.2f}, {_unsigned_zero(interval[1]):.2f}]"


def format_value_with_interval(value: float | None, interval: tuple[float, float] | None) -> str:
    """``12.34 [11.00, 13.50]`` in plain text (Markdown, model cards); just the value without an interval."""
    return f"{format_value(value)} {format_interval(interval)}".rstrip()


def format_delta_with_interval(delta: float | None, interval: tuple[float, float] | None) -> str:
    """A delta with its 95% interval, e.g. ``+5.00 [2.10, 7.90]``; empty when not measured."""
    return "" if delta is None else f"{_unsigned_zero(delta):+.2f} {format_interval(interval)}".rstrip()


def format_row_delta(row: MetricRow) -> str:
    """The row's delta with its 95% interval (:func:`format_delta_with_interval`)."""
    return format_delta_with_interval(row.delta, row.delta_ci)


def format_verdict(row: MetricRow) -> str:
    """The plain verdict with the p-value, e.g. ``significant at 95% (p = 0.004)``; empty without a test."""
    return "" if row.paired is None else f"{row.verdict} (p = {row.paired.p_value:.3f})"


def row_cells(row: MetricRow) -> tuple[str, str, str, str, str]:
    """Plain-text cells under :data:`TABLE_HEADERS`; the headline base's value is marked with ``*``."""
    few = format_value_with_interval(row.base, row.base_ci)
    zero = format_value_with_interval(row.base_zero_shot, row.base_zero_shot_ci)
    if row.headline_value is not None:
        few, zero = (f"{few} *", zero) if row.headline_base == FEW_SHOT else (few, f"{zero} *")
    return few, zero, format_value_with_interval(row.tuned, row.tuned_ci), format_row_delta(row), format_verdict(row)


HEADLINE_NOTE = (
    "A value marked * is the headline base of its test set: of the base model's few-shot and zero-shot scores, "
    "the better on the set's main metric. Every delta of the set is the fine-tune minus that base, with the 95% "
    "interval of a paired bootstrap over the same items."
)


def markdown_cell(text: object) -> str:
    """Text made safe for one Markdown table cell: pipes escaped, HTML escaped, newlines as ``<br>``."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", "<br>")


def markdown_metric_table(rows: list[MetricRow], first_header: str = "metric") -> list[str]:
    """Markdown lines of the three-column comparison table, each delta with its interval and verdict."""
    lines = [f"| {first_header} | " + " | ".join(TABLE_HEADERS) + " |", "|---|" + "---:|" * 4 + "---|"]
    for row in rows:
        lines.append(f"| {markdown_cell(row.label)} | " + " | ".join(row_cells(row)) + " |")
    return lines
