"""Plots rendered to PNG and embedded as data URIs, so a report is one self-contained file."""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Sequence

BASE_COLOR, TUNED_COLOR, DEV_COLOR = "#9aa5b1", "#2b7bb9", "#d9822b"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: reports are written by headless runs
    import matplotlib.pyplot as plt

    return plt


def _data_uri(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def before_after_bars(metrics: list[str], before: list[float], after: list[float], title: str) -> str:
    """A grouped bar chart of metrics before and after fine-tuning, as a ``data:image/png`` URI."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    xs = range(len(metrics))
    width = 0.38
    b1 = ax.bar([x - width / 2 for x in xs], before, width, label="base (few-shot)", color=BASE_COLOR)
    b2 = ax.bar([x + width / 2 for x in xs], after, width, label="fine-tuned", color=TUNED_COLOR)
    ax.bar_label(b1, fmt="%.1f", fontsize=8)
    ax.bar_label(b2, fmt="%.1f", fontsize=8)
    ax.set_xticks(list(xs), metrics)
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _data_uri(fig)


def _error_bars(
    values: Sequence[float | None], intervals: Sequence[tuple[float, float] | None]
) -> list[tuple[int, float, float]]:
    """(bar index, distance below, distance above) of every bar that has a value and an interval."""
    return [
        (i, max(0.0, value - interval[0]), max(0.0, interval[1] - value))
        for i, (value, interval) in enumerate(zip(values, intervals, strict=True))
        if value is not None and interval is not None
    ]


def metric_bars(
    labels: list[str],
    base: Sequence[float | None],
    tuned: Sequence[float | None],
    title: str,
    base_ci: Sequence[tuple[float, float] | None] | None = None,
    tuned_ci: Sequence[tuple[float, float] | None] | None = None,
) -> str:
    """A small base-vs-fine-tuned bar chart of metrics that share one scale, as a ``data:image/png`` URI.

    Args:
        labels: one x-axis label per metric ("" for a chart of one metric that its title names).
        base, tuned: the values; None (not measured) draws no bar and is labelled ``-``.
        title: the chart title (name the unit and the better direction); wrapped to the chart's width.
        base_ci, tuned_ci: optional 95% intervals per metric, drawn as error bars.
    Returns:
        The PNG as a data URI, ready for ``<img src=...>``.
    """
    plt = _pyplot()
    base_ci = base_ci or [None] * len(labels)
    tuned_ci = tuned_ci or [None] * len(labels)
    width_in = max(3.6, 1.6 + 1.5 * len(labels))
    fig, ax = plt.subplots(figsize=(width_in, 2.8), dpi=110)
    xs = list(range(len(labels)))
    width = 0.38
    tops = [0.0]
    for offset, values, intervals, name, color in (
        (-width / 2, base, base_ci, "base", BASE_COLOR),
        (width / 2, tuned, tuned_ci, "fine-tuned", TUNED_COLOR),
    ):
        heights = [0.0 if v is None else v for v in values]
        ax.bar([x + offset for x in xs], heights, width, label=name, color=color)
        label_at = list(heights)
        for i, below, above in _error_bars(values, intervals):
            ax.errorbar(xs[i] + offset, heights[i], yerr=[[below], [above]], fmt="none", ecolor="#333", capsize=3)
            label_at[i] += above  # the value goes above its error bar
        for x, y, v in zip(xs, label_at, values, strict=True):
            text = "-" if v is None else f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"
            ax.annotate(text, (x + offset, y), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
        tops += label_at
    ax.set_xticks(xs if any(labels) else [], labels if any(labels) else [], fontsize=8)
    ax.set_title(textwrap.fill(title, width=int(width_in * 11)), fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    top, bottom = 1.35 * max(tops), 1.35 * min(tops)  # headroom for the value labels and the legend
    ax.set_ylim(min(0.0, bottom), top or 1.0)
    ax.legend(frameon=False, fontsize=7, ncol=2, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _data_uri(fig)


def training_curve(
    loss_history: Sequence[Sequence[float]], dev_history: Sequence[Sequence[float]], title: str
) -> str | None:
    """Train loss per step and dev loss at its evaluation steps, as a ``data:image/png`` URI.

    Args:
        loss_history: ``(step, loss)`` pairs of the training loss (lists from JSON work too).
        dev_history: ``(step, loss)`` pairs of the dev loss; may be empty.
        title: the chart title.
    Returns:
        The PNG data URI, or None when both histories are empty (nothing to draw).
    """
    if not loss_history and not dev_history:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=110)
    if loss_history:
        ax.plot([s for s, _ in loss_history], [v for _, v in loss_history], color=TUNED_COLOR, label="train loss")
    if dev_history:
        steps, losses = [s for s, _ in dev_history], [v for _, v in dev_history]
        ax.plot(steps, losses, color=DEV_COLOR, marker="o", markersize=4, label="dev loss")
    ax.xaxis.get_major_locator().set_params(integer=True)  # steps are whole numbers
    ax.set_xlabel("optimizer step", fontsize=8)
    ax.set_ylabel("loss per target token", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(frameon=False, fontsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _data_uri(fig)
