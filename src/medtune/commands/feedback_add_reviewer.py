"""``medtune feedback add-reviewer``: create a reviewer and print their one-time sign-in token."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.commands.options import FeedbackDbOpt
from medtune.errors import MedtuneError
from medtune.feedback.store import FeedbackStore, database_url


def add_reviewer(
    name: Annotated[str, typer.Argument(help="The reviewer's name, as it appears in exports and statistics.")],
    db: FeedbackDbOpt = None,
    simulated: Annotated[
        bool, typer.Option(help="Mark the reviewer as simulated (not a person); reports say so.")
    ] = False,
    new_token: Annotated[
        bool,
        typer.Option(help="The reviewer exists already: issue a new token; their old token stops working."),
    ] = False,
) -> None:
    """Create a reviewer and print their sign-in token for the reviewer page (shown once: only its hash is stored)."""
    from medtune.cli import _fail

    try:
        with FeedbackStore(database_url(db)) as store:
            token = store.add_reviewer(name, simulated=simulated, replace_token=new_token)
    except MedtuneError as exc:
        _fail(exc)
    typer.echo(f"Reviewer {name.strip()!r} can sign in with this token:")
    typer.echo(token)
    typer.echo("It is not stored (only its hash is) and cannot be shown again; pass it on securely now.")
