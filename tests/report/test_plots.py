"""Report plots: PNG data URIs of the expected size, error bars, and nothing drawn from nothing."""

from __future__ import annotations

import base64
import struct

from medtune.report.plots import _error_bars, metric_bars, training_curve

PREFIX = "data:image/png;base64,"


def _png_size(uri: str) -> tuple[int, int]:
    assert uri.startswith(PREFIX)
    png = base64.b64decode(uri[len(PREFIX) :])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])  # IHDR width, height


def test_metric_bars_width_grows_with_the_number_of_metrics_from_a_minimum():
    one = metric_bars(["perplexity"], [20.0], [15.5], "perplexity: lower is better")
    two = metric_bars(["loglik", "generate"], [40.0, None], [55.0, 30.0], "accuracy (%)", [(30, 50), None])
    # figsize max(3.6, 1.6 + 1.5 n) x 2.8 inches at 110 dpi
    assert _png_size(one) == (396, 308)
    assert _png_size(two) == (506, 308)


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
