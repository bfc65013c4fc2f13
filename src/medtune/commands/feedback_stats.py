"""``medtune feedback stats``: counts, score distribution, throughput, agreement and post-editing effort."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medtune.commands.options import FeedbackDbOpt

BAR_WIDTH = 40


def stats(
    project: Annotated[
        str | None, typer.Option(metavar="NAME", help="One project (default: the judgments of every project).")
    ] = None,
    db: FeedbackDbOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object instead of tables.")
    ] = False,
    bootstrap: Annotated[
        int, typer.Option(min=1, help="Bootstrap resamples for the 95% intervals of agreement and effort.")
    ] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap resamples (same seed, same intervals).")] = 0,
) -> None:
    """Summarise judgments: counts, scores, reviewer throughput, agreement (Krippendorff's alpha), effort (HTER).

    Agreement is measured on the items judged more than once; effort is the TER of each machine
    translation against its post-edit; time is seconds per source word. Intervals: 95% bootstrap.
    """
    from medtune.cli import _fail
    from medtune.errors import MedtuneError
    from medtune.feedback.projects import existing_store_url, require_project
    from medtune.feedback.stats import feedback_stats
    from medtune.feedback.store import FeedbackStore

    try:
        with FeedbackStore(existing_store_url(db)) as store:
            if project is not None:
                require_project(store, project)
            figures = feedback_stats(store.judgments(project), bootstrap=bootstrap, seed=seed)
    except MedtuneError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps({"project": project, **figures}, indent=2))
        return
    print_stats(Console(), figures, project)


def print_stats(console: Console, figures: dict, project: str | None) -> None:
    """The figures of :func:`medtune.feedback.stats.feedback_stats` as three tables and a warning on simulated judgments."""
    scope = f"project {project!r}" if project else "all projects"
    summary = Table(title=f"Feedback: {scope}", show_header=False)
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    summary.add_row("items judged", str(figures["items"]))
    summary.add_row("judgments", f"{figures['judgments']} ({figures['simulated_judgments']} SIMULATED)")
    summary.add_row("reviewers", str(figures["reviewers"]))
    summary.add_row("mean score", _number(figures["score_mean"]))
    agreement = figures["agreement"]
    summary.add_row(
        "agreement (Krippendorff's alpha, interval)",
        "no item judged twice"
        if agreement is None
        else f"{agreement['alpha']:.3f} [{agreement['ci_low']:.3f}, {agreement['ci_high']:.3f}] on {agreement['items']} item(s)",
    )
    effort = figures["effort"]
    summary.add_row(
        "post-editing effort (HTER)",
        "no post-edits"
        if not effort["post_edits"]
        else f"{effort['hter_mean']:.3f} [{effort['ci_low']:.3f}, {effort['ci_high']:.3f}] over {effort['post_edits']} post-edit(s)",
    )
    summary.add_row("seconds per source word", _number(figures["seconds_per_word"], 2))
    console.print(summary)

    histogram = Table(title="Score distribution")
    histogram.add_column("score")
    histogram.add_column("judgments", justify="right")
    histogram.add_column("")
    counts = figures["score_histogram"]
    top = max(counts) or 1
    for index, count in enumerate(counts):
        high = "]" if index == len(counts) - 1 else ")"
        bar = "█" * round(BAR_WIDTH * count / top)
        histogram.add_row(f"[{index / len(counts):.1f}, {(index + 1) / len(counts):.1f}{high}", str(count), bar)
    console.print(histogram)

    reviewers = Table(title="Reviewers")
    for column in ("reviewer", "kind", "judgments", "hours timed", "judgments / hour"):
        reviewers.add_column(column, justify="left" if column in ("reviewer", "kind") else "right")
    for row in figures["per_reviewer"]:
        reviewers.add_row(
            row["reviewer"],
            "SIMULATED" if row["simulated"] else "human",
            str(row["judgments"]),
            f"{row['seconds'] / 3600:.2f}",
            _number(row["judgments_per_hour"], 1),
        )
    console.print(reviewers)
    if figures["simulated_judgments"]:
        console.print(
            f"Note: {figures['simulated_judgments']} of {figures['judgments']} judgment(s) are SIMULATED "
            "(reference-based chrF++ scores and post-edits), not human judgments.",
            highlight=False,
        )


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
