"""``medtune feedback queue``: translate a file with a model and queue the translations for reviewers."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.commands.options import DeviceOpt, DtypeOpt, FeedbackDbOpt, FeedbackProjectOpt


def queue(
    model: Annotated[
        str,
        typer.Option(
            help="The model that translates: gemma-3-270m, a local folder, a medtune training output, a Hugging Face "
            "id or a Marian translation model."
        ),
    ],
    data: Annotated[
        str,
        typer.Option(help="Sentences to translate: .jsonl/.csv/.tsv, demo:<file> or hf:<dataset>[:split]."),
    ],
    project: FeedbackProjectOpt,
    db: FeedbackDbOpt = None,
    src_col: Annotated[str, typer.Option(help="Column holding the source sentence.")] = "en",
    ref_col: Annotated[
        str,
        typer.Option(help="Column holding a reference translation, kept with the item when the file has it."),
    ] = "es",
    id_col: Annotated[
        str, typer.Option(help="Column holding each row's own id, kept with the item when the file has it.")
    ] = "id",
    reviewers_per_item: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Different reviewers who judge each item; 2 or more measures their agreement. Default: 1 for a new "
            "project, unchanged for an existing one.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Sentences translated per batch.")] = 16,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Longest translation in tokens (also capped at twice the source plus 16).")
    ] = 128,
    limit: Annotated[int | None, typer.Option(min=1, help="Queue only the first N rows of the file.")] = None,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Translate a file zero-shot (greedy) and queue each translation for review; re-queueing adds nothing twice."""
    from medtune.cli import _fail, _log
    from medtune.errors import MedtuneError
    from medtune.feedback.queue import model_version, queue_translations, read_queue_rows
    from medtune.feedback.store import FeedbackStore, database_url
    from medtune.models.loading import load_model

    try:
        rows = read_queue_rows(data, src_col, ref_col, id_col)[:limit]  # bad rows fail before the model loads
        with FeedbackStore(database_url(db)) as store:
            loaded = load_model(model, dtype=dtype, device=device, log=_log)
            queued = queue_translations(
                store,
                project,
                loaded,
                rows,
                src_col=src_col,
                ref_col=ref_col,
                id_col=id_col,
                model_id=model,
                model_version=model_version(loaded.ref),
                reviewers_per_item=reviewers_per_item,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                log=_log,
            )
    except MedtuneError as exc:
        _fail(exc)
    with_reference = sum(bool(str(row.get(ref_col) or "").strip()) for row in rows)
    _log(
        f"Project {project!r}: {queued.added} item(s) added, {queued.present} already present; {with_reference} of {len(rows)} "
        f"row(s) have a reference ({ref_col!r})."
    )
