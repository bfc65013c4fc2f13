"""How reports format values, deltas, intervals and Markdown cells."""

from __future__ import annotations

from medtune.report.formatting import (
    MetricRow,
    format_delta,
    format_delta_with_interval,
    format_interval,
    format_value,
    format_value_with_interval,
    markdown_cell,
    markdown_metric_table,
)


def test_values_and_intervals():
    assert format_value(None) == "-" and format_value(12.345) == "12.35"
    assert format_interval(None) == "" and format_interval((1.0, 2.555)) == "[1.00, 2.56]"
    assert format_value_with_interval(3.0, (2.0, 4.0)) == "3.00 [2.00, 4.00]"
    assert format_value_with_interval(3.0, None) == "3.00"
    # a value that rounds to zero never shows as -0.00
    assert format_value(-0.001) == "0.00" and format_interval((-0.004, 0.3)) == "[0.00, 0.30]"
    assert format_delta_with_interval(-0.002, (-0.004, 0.01)) == "+0.00 [0.00, 0.01]"
    assert format_delta_with_interval(-1.5, (-2.0, -1.0)) == "-1.50 [-2.00, -1.00]"
    assert format_delta_with_interval(None, None) == "" and format_delta_with_interval(2.0, None) == "+2.00"


def test_delta_class_follows_the_metric_direction():
    assert format_delta(20.0, 15.5, higher_better=False) == ("-4.50", "good")
    assert format_delta(20.0, 15.5, higher_better=True) == ("-4.50", "bad")
    assert format_delta(40.0, 55.0, higher_better=True) == ("+15.00", "good")
    assert format_delta(None, 55.0, higher_better=True) == ("", "")
    # the delta is against the headline base: zero-shot unless told otherwise
    assert MetricRow("x", "x", None, 15.5, False, base_zero_shot=20.0).delta == -4.5
    assert MetricRow("x", "x", 20.0, 15.5, False, headline_base="few_shot").delta == -4.5
    assert MetricRow("x", "x", 20.0, 1.0, True).delta is None  # no zero-shot score


def test_markdown_cells_and_table():
    assert markdown_cell("a | <b>b</b>\nc") == "a \\| &lt;b&gt;b&lt;/b&gt;<br>c"
    rows = [MetricRow("acc (%)", "acc", 40.0, None, True, (30.0, 50.0), headline_base="few_shot")]
    assert markdown_metric_table(rows, "set / metric") == [
        "| set / metric | base few-shot | base zero-shot | fine-tuned | delta vs headline base [95% CI] | verdict |",
        "|---|---:|---:|---:|---:|---|",
        "| acc (%) | 40.00 [30.00, 50.00] * | - | - |  |  |",
    ]
