"""``medtune feedback import``: load judgments collected elsewhere into the store."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.commands.options import FeedbackDbOpt, FeedbackProjectOpt


def import_(
    file: Annotated[
        str,
        typer.Argument(
            help="Judgments: .csv/.tsv/.jsonl rows of source, translation, score and optionally post_edit, reviewer, "
            "reference, flags, comment, seconds (e.g. demo:feedback_triples.csv)."
        ),
    ],
    project: FeedbackProjectOpt,
    db: FeedbackDbOpt = None,
    src_col: Annotated[
        str | None, typer.Option(help="Source column (default: 'source', else 'English' if present).")
    ] = None,
    mt_col: Annotated[
        str | None,
        typer.Option(help="Machine translation column (default: 'translation', else 'Spanish' if present)."),
    ] = None,
    score_col: Annotated[
        str | None, typer.Option(help="Score column (default: 'score', else 'feedback' if present).")
    ] = None,
    post_edit_col: Annotated[
        str | None, typer.Option(help="Post-edit column (default: 'post_edit' when present; optional).")
    ] = None,
    reviewer_col: Annotated[
        str | None,
        typer.Option(help="Reviewer-name column (default: 'reviewer' when present; else --reviewer for every row)."),
    ] = None,
    reviewer: Annotated[
        str, typer.Option(help="Reviewer recorded for rows without a reviewer column or value.")
    ] = "import",
    score_scale: Annotated[
        float | None,
        typer.Option(
            help="The scores are on a 0..N scale: each is divided by N. Without it, a score outside [0, 1] is a bad row."
        ),
    ] = None,
    on_bad_rows: Annotated[
        str,
        typer.Option(
            help="error: refuse the whole file when any row is bad (nothing written), listing each bad line; "
            "skip: report each bad line and import the other rows (in one transaction)."
        ),
    ] = "error",
) -> None:
    """Import (source, translation, score[, post-edit]) judgments; English/Spanish/feedback triples import as they are."""
    from medtune.cli import _fail, _log
    from medtune.errors import MedtuneError
    from medtune.feedback.imports import import_parsed, read_judgment_file
    from medtune.feedback.store import FeedbackStore, database_url

    try:
        parsed = read_judgment_file(
            file,
            src_col=src_col,
            mt_col=mt_col,
            score_col=score_col,
            post_edit_col=post_edit_col,
            reviewer_col=reviewer_col,
            score_scale=score_scale,
        )
        with FeedbackStore(database_url(db)) as store:
            imported, skipped = import_parsed(
                store, project, parsed, spec=file, default_reviewer=reviewer, on_bad_rows=on_bad_rows
            )
    except MedtuneError as exc:
        _fail(exc)
    for message in skipped:
        _log(f"skipped {message}")
    read = ", ".join(f"{role}={column!r}" for role, column in parsed.columns.items() if column is not None)
    _log(
        f"Imported {imported} judgment(s) into project {project!r} ({len(skipped)} bad row(s) skipped; columns {read})."
    )
