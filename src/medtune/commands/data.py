"""``medtune data validate``: run only a recipe's data stage and show what it found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from medtune.data.io import read_jsonl
from medtune.errors import MedtuneError

data_app = typer.Typer(
    help="Check a corpus before a long job: load, validate, deduplicate and split it as a recipe would.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(exc: MedtuneError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def validation_table(reports: list[dict]) -> Table:
    """One row per validated file: rows read, kept, dropped, and the issues by kind."""
    table = Table(title="data validation")
    for column in ("file", "rows", "kept", "dropped", "issues by kind"):
        table.add_column(column, justify="left" if column in ("file", "issues by kind") else "right")
    for report in reports:
        counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(report.get("counts", {}).items())) or "none"
        table.add_row(report["name"], str(report["total"]), str(report["kept"]), str(report["dropped"]), counts)
    return table


def read_validation(folder: Path) -> tuple[Path | None, list[dict], dict]:
    """The data stage's validation report, in whichever form the task writes it: ``validation.json`` (a list
    of per-file reports, or ``{"reports": [...], ...}`` with extra checks) or ``validation.jsonl``.

    Returns its path (None when the stage wrote none), the per-file reports and the extra figures.
    """
    as_json, as_lines = folder / "validation.json", folder / "validation.jsonl"
    if as_json.is_file():
        content = json.loads(as_json.read_text(encoding="utf-8"))
        if isinstance(content, dict):
            return as_json, content.get("reports", []), {k: v for k, v in content.items() if k != "reports"}
        return as_json, content, {}
    if as_lines.is_file():
        return as_lines, read_jsonl(as_lines), {}
    return None, [], {}


def validate(
    recipe: Annotated[
        str, typer.Argument(help="A bundled recipe name (see 'medtune recipes') or a path to a recipe YAML file.")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe key, e.g. --set data.train=my.csv (repeatable)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Use the run folder as it is: an unchanged data stage is not redone.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="With --resume: accept a changed recipe or changed input files.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Start again in a folder that holds an earlier medtune run (replaced)."),
    ] = False,
) -> None:
    """Run only the recipe's data stage: load, validate, deduplicate, split, and write the validation report
    (<run_dir>/data/validation.json). Bad rows are listed with their file and line; a later 'medtune run' in
    the same folder reuses the split."""
    from medtune.pipeline import validate_recipe_data
    from medtune.recipes.loader import load_recipe

    try:
        run, record = validate_recipe_data(load_recipe(recipe, set_), resume, overwrite, force)
    except MedtuneError as exc:
        _fail(exc)
    if not run.writes:  # under a launcher the main process prints the one result
        return
    report_path, reports, extras = read_validation(run.sub("data"))
    console = Console()
    if reports:
        console.print(validation_table(reports))
    for key, value in extras.items():  # e.g. leaked_from_train: test rows also found in training
        console.print(f"{key}: {value}")
    splits = {k: v for k, v in record.items() if isinstance(v, int) and not isinstance(v, bool)}
    console.print("splits: " + ", ".join(f"{name} {n}" for name, n in splits.items()))
    typer.echo(f"Validation report: {report_path}", err=True)


data_app.command("validate")(validate)
