"""The pretrain report's forgetting check: a rise of general-domain perplexity over 5% whose interval is above 0."""

from __future__ import annotations

import pytest

from medtune.eval.significance import PairedDelta
from medtune.report.formatting import MetricRow
from medtune.report.pretrain import forgetting_check


def _general(after: float, low: float | None, high: float | None) -> MetricRow:
    paired = None if low is None else PairedDelta(after - 30.0, low, high, 0.01, 20, 1000, 42)
    return MetricRow(
        "general-domain text perplexity", "general_perplexity", None, after, False, base_zero_shot=30.0, paired=paired
    )


def test_a_significant_rise_over_five_percent_is_forgetting():
    check = forgetting_check(_general(33.0, 1.0, 5.0))  # +10%
    assert check.passed is False
    assert check.message == (
        "FORGETTING: general-domain perplexity rose by +10.0% (delta +3.000, 95% interval [1.00, 5.00]): "
        "more than 5%, and the whole interval is above 0."
    )


@pytest.mark.parametrize(
    ("after", "low", "high", "start"),
    [
        (33.0, -0.5, 6.0, "No forgetting shown: general-domain perplexity changed by +10.0%"),  # interval reaches 0
        (33.0, None, None, "No forgetting shown"),  # no paired test
        (31.0, 0.5, 1.5, "No forgetting: general-domain perplexity changed by +3.3%"),  # significant but small
        (27.0, -4.0, -2.0, "No forgetting: general-domain perplexity changed by -10.0%"),
    ],
)
def test_no_forgetting_without_a_big_significant_rise(after, low, high, start):
    check = forgetting_check(_general(after, low, high))
    assert check.passed is True and check.message.startswith(start)
