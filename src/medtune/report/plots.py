"""Plots rendered to PNG and embedded as data URIs, so a report is one self-contained file."""

from __future__ import annotations

import base64
import io


def before_after_bars(metrics: list[str], before: list[float], after: list[float], title: str) -> str:
    """A grouped bar chart of metrics before and after fine-tuning, as a ``data:image/png`` URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    xs = range(len(metrics))
    width = 0.38
    b1 = ax.bar([x - width / 2 for x in xs], before, width, label="base (few-shot)", color="#9aa5b1")
    b2 = ax.bar([x + width / 2 for x in xs], after, width, label="fine-tuned", color="#2b7bb9")
    ax.bar_label(b1, fmt="%.1f", fontsize=8)
    ax.bar_label(b2, fmt="%.1f", fontsize=8)
    ax.set_xticks(list(xs), metrics)
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
