"""What every task's pipeline shares: opening the run folder and guarding the model folder."""

from __future__ import annotations

from pathlib import Path

from medtune.errors import MedtuneError
from medtune.recipes.loader import recipe_to_yaml
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder


def open_run(recipe: Recipe, resume: bool, overwrite: bool) -> RunFolder:
    """Create (or reopen with ``resume``) the run folder and record the resolved recipe."""
    run = RunFolder(Path(recipe.run_dir), recipe.name)
    _guard_output_dir(recipe, run, resume or overwrite)
    run.open(resume, overwrite)
    run.sub("recipe.yaml").write_text(recipe_to_yaml(recipe), encoding="utf-8")
    return run


def _guard_output_dir(recipe: Recipe, run: RunFolder, allowed: bool) -> None:
    out = Path(recipe.output_dir)
    inside_run = run.path.resolve() in out.resolve().parents
    if not inside_run and out.exists() and any(out.iterdir()) and not allowed:
        raise MedtuneError(
            f"output_dir {out} is not empty (it holds another model or run). Choose another "
            "output_dir, or pass --resume to continue training there."
        )


def train_record(trained) -> dict:
    """The train stage's entry in run.json."""
    return {
        "output_dir": str(trained.path),
        **trained.result.to_dict(),
        "trainable_params": trained.trainable_params,
        "total_params": trained.total_params,
    }
