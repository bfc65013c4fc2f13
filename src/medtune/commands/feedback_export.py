"""``medtune feedback export``: write every judgment of a project as JSONL or CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from medtune.commands.options import FeedbackDbOpt, FeedbackProjectOpt


def export(
    project: FeedbackProjectOpt,
    db: FeedbackDbOpt = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="jsonl (one JSON object a line) or csv (flags joined with ';', empty cell = no value). Each row: "
            "item_id, reviewer, simulated, score, post_edit, flags, comment, seconds, created_at (ISO 8601 UTC), "
            "source, translation, reference, model_id.",
        ),
    ] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of standard output.")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out when it exists (otherwise an existing file is kept).")
    ] = False,
) -> None:
    """Export a project's judgments, one row per judgment, ordered as they were made."""
    from medtune.cli import _fail, _log
    from medtune.errors import MedtuneError
    from medtune.feedback.export import format_judgments, write_export
    from medtune.feedback.projects import existing_store_url, require_project
    from medtune.feedback.store import FeedbackStore

    try:
        if out is not None and out.exists() and not overwrite:
            raise MedtuneError(f"--out {out} already exists and is kept; choose another path or pass --overwrite.")
        with FeedbackStore(existing_store_url(db)) as store:
            require_project(store, project)
            judgments = store.judgments(project)
        text = format_judgments(judgments, fmt)
        if out is not None:
            write_export(text, out, overwrite)
    except MedtuneError as exc:
        _fail(exc)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        simulated = sum(j.simulated for j in judgments)
        _log(f"Wrote {len(judgments)} judgment(s) ({simulated} simulated) to {out}")
