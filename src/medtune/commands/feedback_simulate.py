"""``medtune feedback simulate``: judge a project's items with the simulated (reference-based) reviewer."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.commands.options import FeedbackDbOpt, FeedbackProjectOpt


def simulate(
    project: FeedbackProjectOpt,
    db: FeedbackDbOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Judge at most N items (default: every open item).")] = None,
    reviewer: Annotated[
        str, typer.Option(help="Name of the simulated reviewer in the store (created as simulated when missing).")
    ] = "simulated-chrf",
) -> None:
    """Judge open items without people: score = sentence chrF++ vs the reference / 100, post-edit = the reference.

    The judgments are stored as simulated and marked so in exports, statistics and reports. Items
    without a reference are left for human reviewers.
    """
    from medtune.cli import _fail, _log
    from medtune.errors import MedtuneError
    from medtune.feedback.projects import existing_store_url
    from medtune.feedback.simulate import simulate_reviews
    from medtune.feedback.store import FeedbackStore

    try:
        with FeedbackStore(existing_store_url(db)) as store:
            simulate_reviews(store, project, reviewer=reviewer, limit=limit, log=_log)
    except MedtuneError as exc:
        _fail(exc)
