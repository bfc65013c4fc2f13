"""Plots rendered to PNG and embedded as data URIs, so a report is one self-contained file."""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

BASE_COLOR, TUNED_COLOR, DEV_COLOR = "#9aa5b1", "#2b7bb9", "#d9822b"
FEW_SHOT_COLOR, DELTA_COLOR = "#d5dbe1", "#6a5fa8"
LABEL_WIDTH = 14  # characters per line of an x tick label; longer labels wrap


@dataclass
class Bars:
    """One series of a bar chart: a value per metric (None: not measured) and optional 95% intervals."""

    name: str
    values: Sequence[float | None]
    intervals: Sequence[tuple[float, float] | None] | None = None
    color: str = BASE_COLOR


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


def _error_bars(
    values: Sequence[float | None], intervals: Sequence[tuple[float, float] | None]
) -> list[tuple[int, float, float]]:
    """(bar index, distance below, distance above) of every bar that has a value and an interval."""
    return [
        (i, max(0.0, value - interval[0]), max(0.0, interval[1] - value))
        for i, (value, interval) in enumerate(zip(values, intervals, strict=True))
        if value is not None and interval is not None
    ]


def _value_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _draw_series(ax, xs: list[int], series: Sequence[Bars], width: float) -> list[float]:
    """Grouped bars with error bars and value labels; returns the heights the labels reach (for the y range)."""
    reach = [0.0]
    for k, bars in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        heights = [0.0 if v is None else v for v in bars.values]
        ax.bar([x + offset for x in xs], heights, width, label=bars.name, color=bars.color)
        label_at = list(heights)
        for i, below, above in _error_bars(bars.values, bars.intervals or [None] * len(xs)):
            ax.errorbar(xs[i] + offset, heights[i], yerr=[[below], [above]], fmt="none", ecolor="#333", capsize=3)
            label_at[i] += above if heights[i] >= 0 else -below  # the value goes beyond its error bar
        for x, y, v in zip(xs, label_at, bars.values, strict=True):
            below_zero = y < 0
            ax.annotate(
                _value_text(v),
                (x + offset, y),
                xytext=(0, -2 if below_zero else 2),
                textcoords="offset points",
                ha="center",
                va="top" if below_zero else "bottom",
                fontsize=6,
            )
        reach += label_at
    return reach


def tick_labels_overlap(fig) -> list[tuple[str, str]]:
    """Pairs of tick or axis labels of ``fig`` whose drawn boxes intersect (empty: all readable)."""
    renderer = fig.canvas.get_renderer()
    texts = []
    for ax in fig.axes:
        texts += [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_visible() and t.get_text()]
        texts += [t for t in (ax.xaxis.label, ax.yaxis.label) if t.get_text()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [
        (a, b)
        for i, (a, box_a) in enumerate(boxes)
        for b, box_b in boxes[i + 1 :]
        if box_a.overlaps(box_b) and box_a.width > 0 and box_b.width > 0
    ]


DELTA_TITLE = "fine-tuned minus headline base,\n95% interval"


def metric_figure(
    labels: list[str], series: Sequence[Bars], title: str, delta: Bars | None = None, delta_title: str = DELTA_TITLE
):
    """A matplotlib figure: the metrics' values as grouped bars and, beside them, the deltas with 95% intervals.

    Args:
        labels: one x-axis label per metric ("" for a chart of one metric that its title names);
            long labels wrap, and the figure widens until no two labels overlap.
        series: the bars of each system (e.g. base few-shot, base zero-shot, fine-tuned); a series
            with no value at all is left out.
        title: the chart title (name the unit and the better direction); wrapped to the chart's width.
        delta: the fine-tune minus the headline base per metric, its intervals drawn as error bars.
        delta_title: the title over the deltas (say what minus what).
    Returns:
        The figure (the caller saves or closes it).
    """
    plt = _pyplot()
    series = [s for s in series if any(v is not None for v in s.values)]
    with_delta = delta is not None and any(v is not None for v in delta.values)
    shown = [textwrap.fill(label, LABEL_WIDTH) for label in labels] if any(labels) else []
    width_in = max(3.6, 1.6 + 1.6 * len(labels)) + (1.2 + 0.8 * len(labels) if with_delta else 0)
    fig, axes = plt.subplots(
        1,
        2 if with_delta else 1,
        figsize=(width_in, 3.0),
        dpi=110,
        squeeze=False,
        gridspec_kw={"width_ratios": [2, 1]} if with_delta else None,
    )
    ax = axes[0][0]
    xs = list(range(len(labels)))
    reach = _draw_series(ax, xs, series, 0.8 / max(1, len(series)))
    ax.set_xticks(xs if shown else [], shown)
    ax.tick_params(axis="x", labelsize=7)
    ax.tick_params(axis="y", labelsize=7)
    top, bottom = 1.35 * max(reach), 1.35 * min(reach)  # headroom for the value labels and the legend
    ax.set_ylim(min(0.0, bottom), top or 1.0)
    ax.legend(frameon=False, fontsize=6, ncol=len(series), loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    if with_delta:
        dax = axes[0][1]
        reach = _draw_series(dax, xs, [delta], 0.5)
        dax.axhline(0, color="#333", linewidth=0.8)
        dax.set_xticks(xs if shown else [], shown)
        dax.tick_params(axis="x", labelsize=7)
        dax.tick_params(axis="y", labelsize=7)
        span = max(abs(v) for v in reach) or 1.0
        dax.set_ylim(-1.35 * span, 1.35 * span)
        dax.set_title(delta_title, fontsize=7)
        dax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(textwrap.fill(title, width=int(width_in * 11)), fontsize=9)
    fig.tight_layout()
    for _ in range(6):  # widen until every label has room (long labels, many metrics)
        fig.canvas.draw()
        if not tick_labels_overlap(fig):
            break
        fig.set_size_inches(fig.get_figwidth() * 1.3, fig.get_figheight())
        fig.tight_layout()
    return fig


def metric_bars(
    labels: list[str], series: Sequence[Bars], title: str, delta: Bars | None = None, delta_title: str = DELTA_TITLE
) -> str:
    """:func:`metric_figure` as a ``data:image/png`` URI, ready for ``<img src=...>``."""
    return _data_uri(metric_figure(labels, series, title, delta, delta_title))


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


def metric_curves(history: Sequence[Sequence], keys: Sequence[tuple[str, str]], title: str) -> str | None:
    """Figures logged during training, one small panel per figure, as a ``data:image/png`` URI.

    Args:
        history: ``(step, {name: value})`` pairs (lists from JSON work too), e.g. DPO's reward margin.
        keys: ``(name, axis label)`` of each figure to draw; a figure never logged is left out.
        title: the chart title.
    Returns:
        The PNG data URI, or None when no figure was logged (nothing to draw).
    """
    drawn = [(k, label) for k, label in keys if any(k in figures for _, figures in history)]
    if not drawn:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(drawn), figsize=(3.2 * len(drawn), 2.6), dpi=110, squeeze=False)
    for ax, (key, label) in zip(axes[0], drawn, strict=True):
        points = [(step, figures[key]) for step, figures in history if figures.get(key) is not None]
        ax.plot([s for s, _ in points], [v for _, v in points], color=TUNED_COLOR, marker="o", markersize=3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        if key.endswith("accuracy"):
            ax.set_ylim(-0.05, 1.05)  # a share: always on the same scale
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _data_uri(fig)


def histogram(counts: Sequence[int], edges: Sequence[float], title: str, xlabel: str) -> str | None:
    """Bars of ``counts`` between consecutive ``edges`` (``len(edges) == len(counts) + 1``), as a PNG data URI.

    Returns None when every count is 0.
    """
    if not any(counts):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 2.6), dpi=110)
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(edges[:-1], counts, widths, align="edge", color=TUNED_COLOR, edgecolor="white")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("count", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _data_uri(fig)
