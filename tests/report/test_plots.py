"""Report plots: PNG data URIs, error bars where the intervals are, labels that never overlap."""

from __future__ import annotations

import base64
import struct

import pytest
from matplotlib.container import ErrorbarContainer

from medtune.report.plots import Bars, _error_bars, metric_bars, metric_figure, tick_labels_overlap, training_curve

PREFIX = "data:image/png;base64,"
# The translation report's old chart put all of these on one axis; "med. term accuracy (%)" ran into its neighbour.
LONG_LABELS = ["medical chrF++", "medical BLEU", "medical term accuracy (%)", "general chrF++", "general BLEU"]


def _png_size(uri: str) -> tuple[int, int]:
    assert uri.startswith(PREFIX)
    png = base64.b64decode(uri[len(PREFIX) :])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])  # IHDR width, height


def _series(n: int) -> list[Bars]:
    return [
        Bars("base few-shot", [40.0 + i for i in range(n)]),
        Bars("base zero-shot", [35.0 + i for i in range(n)]),
        Bars("fine-tuned", [55.0 + i for i in range(n)], [(50.0 + i, 60.0 + i) for i in range(n)]),
    ]


def _overlapping_tick_labels(fig) -> list[tuple[str, str]]:
    """Independent of the plotting code: every pair of drawn tick labels whose boxes intersect."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [
        (label.get_text(), label.get_window_extent(renderer))
        for ax in fig.axes
        for label in ax.get_xticklabels() + ax.get_yticklabels()
        if label.get_visible() and label.get_text()
    ]
    return [(a, b) for i, (a, box_a) in enumerate(labels) for b, box_b in labels[i + 1 :] if box_a.overlaps(box_b)]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_tick_labels_never_overlap(n):
    labels = LONG_LABELS[:n] if n > 1 else [""]
    delta = Bars("delta", [15.0] * n, [(-2.0, 30.0)] * n)
    fig = metric_figure(labels, _series(n), "accuracy (%): higher is better", delta)
    assert _overlapping_tick_labels(fig) == []
    assert tick_labels_overlap(fig) == []
    shown = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    if n > 2:  # long labels wrap instead of running into each other
        assert "medical term\naccuracy (%)" in shown


def test_labels_of_many_metrics_still_fit():
    labels = [f"a very long metric label number {i} (%)" for i in range(8)]
    series = [Bars("fine-tuned", [50.0] * 8)]
    fig = metric_figure(labels, series, "t", Bars("delta", [1.0] * 8, [(0.5, 1.5)] * 8))
    assert _overlapping_tick_labels(fig) == []


def test_deltas_are_drawn_with_their_intervals_as_error_bars():
    delta = Bars("delta", [6.5, -1.0, None], [(4.0, 9.0), (-3.0, 0.5), None])
    fig = metric_figure(["chrF++", "BLEU", "TER"], _series(3), "t", delta)
    values_ax, delta_ax = fig.axes
    bars = [c for c in delta_ax.containers if isinstance(c, ErrorbarContainer)]
    spans = sorted(
        tuple(sorted(segment[:, 1]))
        for bar in bars
        for collection in bar.lines[2]
        for segment in collection.get_segments()
    )
    assert spans == [(-3.0, 0.5), (4.0, 9.0)]  # one error bar per delta that has an interval, from low to high
    # the value panel: error bars only for the series that has intervals (fine-tuned)
    assert sum(isinstance(c, ErrorbarContainer) for c in values_ax.containers) == 3
    # series with no value at all are left out (perplexity tasks have no few-shot base)
    fig = metric_figure([""], [Bars("base few-shot", [None]), Bars("fine-tuned", [12.0])], "t")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["fine-tuned"]


def test_metric_bars_is_a_png():
    uri = metric_bars([""], [Bars("base", [20.0]), Bars("tuned", [15.5])], "perplexity: lower is better")
    width, height = _png_size(uri)
    assert height == 330 and width >= 396  # 3.0 x at least 3.6 inches at 110 dpi


def test_error_bars_are_distances_from_the_value():
    # only bars with both a value and an interval get one
    assert _error_bars([10.0, None, 5.0, 7.0], [(8.0, 13.0), (1.0, 2.0), None, (6.5, 7.0)]) == [
        (0, 2.0, 3.0),
        (3, 0.5, 0.0),
    ]


def test_training_curve():
    assert training_curve([], [], "t") is None
    assert _png_size(training_curve([[1, 2.5], [2, 2.0]], [], "t")) == (660, 308)
    assert _png_size(training_curve([], [(2, 2.2)], "t")) == (660, 308)
