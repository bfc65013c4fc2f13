"""``medtune feedback score``: score (source, translation) rows with a trained reward model, no reference needed."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

from medtune.commands.options import DeviceOpt, FeedbackDbOpt
from medtune.errors import MedtuneError

OUT_FORMATS = {".jsonl": None, ".csv": ",", ".tsv": "\t"}


def read_score_rows(data: str, src_col: str, mt_col: str) -> list[dict]:
    """The rows of ``data`` (every column kept), each checked to hold text in ``src_col`` and ``mt_col``.

    Raises:
        MedtuneError: unreadable file; a row without one of the columns or with a non-text value there
            (naming the file, line, column and the columns the row has).
    """
    from medtune.data.io import read_rows

    rows = read_rows(data)
    if not rows:
        raise MedtuneError(f"{data} holds no rows to score; expected rows with '{src_col}' and '{mt_col}' columns.")
    for row in rows:
        for option, column in (("--src-col", src_col), ("--mt-col", mt_col)):
            value = row.fields.get(column)
            if not isinstance(value, str):
                found = "is missing" if value is None else f"holds {type(value).__name__} {value!r}, not text"
                raise MedtuneError(
                    f"{row.origin}: column '{column}' ({option}) {found}; the row has columns "
                    f"{sorted(row.fields)}. Name the right column with {option}."
                )
    return [dict(row.fields) for row in rows]


def store_rows(db: str | None, project: str) -> list[dict]:
    """The items of a feedback project as rows: ``id``, ``source``, ``translation``, ``model_id``."""
    from medtune.feedback.projects import existing_store_url
    from medtune.feedback.store import FeedbackStore

    url = existing_store_url(db)
    with FeedbackStore(url) as store:
        if project not in store.project_names():
            raise MedtuneError(
                f"--project {project!r} is not in the feedback store {url}; its projects: "
                f"{', '.join(store.project_names()) or 'none'}."
            )
        items = store.items(project)
    return [{"id": i.id, "source": i.source, "translation": i.translation, "model_id": i.model_id} for i in items]


def write_scored_rows(path: Path, rows: list[dict]) -> None:
    """Write rows as JSONL, CSV or TSV (by the suffix), atomically (a temporary file renamed into place)."""
    from medtune.data.io import write_jsonl

    delimiter = OUT_FORMATS[path.suffix.lower()]
    if delimiter is None:
        write_jsonl(path, rows)
        return
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def score(
    model: Annotated[
        str,
        typer.Option(
            help="A reward model folder written by 'medtune train feedback-reward' (holds reward_model.json)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Where the scored rows go: .jsonl, .csv or .tsv (by suffix). Each input row is written whole, in "
            "input order (its id kept), with a 'reward' column added: higher = better translation. An existing file "
            "is refused unless --overwrite."
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option(
            help="Rows to score (.jsonl/.csv/.tsv): a source sentence and its translation each, plus any other "
            "columns (kept). Without --data: the items of --project in the store."
        ),
    ] = None,
    src_col: Annotated[str, typer.Option(help="Column of --data holding the source sentence.")] = "source",
    mt_col: Annotated[str, typer.Option(help="Column of --data holding the translation to score.")] = "translation",
    id_col: Annotated[
        str,
        typer.Option(help="Column of --data holding each row's id (kept as it is; rows without one are kept too)."),
    ] = "id",
    db: FeedbackDbOpt = None,
    project: Annotated[
        str | None,
        typer.Option(help="Without --data: score every item of this feedback project (rows: id, source, translation)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows scored per forward pass.")] = 16,
    device: DeviceOpt = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")] = False,
) -> None:
    """Score translations with a trained reward model: one 'reward' per (source, translation) row."""
    from medtune.cli import _fail, _log
    from medtune.feedback.reward import RewardModel

    try:
        if (data is None) == (project is None):
            raise MedtuneError(
                "Give exactly one of --data (a file of source/translation rows) or --project (the items of a "
                f"feedback project in --db); got {'both' if data else 'neither'}."
            )
        if out.suffix.lower() not in OUT_FORMATS:
            raise MedtuneError(f"--out {out}: expected a .jsonl, .csv or .tsv file name, got suffix {out.suffix!r}.")
        if out.exists() and not overwrite:
            raise MedtuneError(f"--out {out} already exists; choose another file or pass --overwrite to replace it.")
        if data is not None:
            rows = read_score_rows(data, src_col, mt_col)
            pairs = [(row[src_col], row[mt_col]) for row in rows]
        else:
            rows = store_rows(db, project)
            pairs = [(row["source"], row["translation"]) for row in rows]
        reward_model = RewardModel.load(model, device=device)
        rewards = reward_model.score(pairs, batch_size=batch_size)
        write_scored_rows(out, [{**row, "reward": reward} for row, reward in zip(rows, rewards, strict=True)])
    except MedtuneError as exc:
        _fail(exc)
    with_ids = sum(1 for row in rows if id_col in row) if data is not None else len(rows)
    _log(f"Scored {len(rows)} rows ({with_ids} with an id) -> {out}")
