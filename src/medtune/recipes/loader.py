"""Loading recipes: bundled names or paths, ``--set key=value`` overrides, readable errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from medtune.errors import MedtuneError
from medtune.recipes.schema import Recipe

BUNDLED_DIR = Path(__file__).parent


def bundled_recipes() -> dict[str, Path]:
    """Names of the recipes shipped with medtune, mapped to their files."""
    return {p.stem: p for p in sorted(BUNDLED_DIR.glob("*.yaml"))}


def _read_yaml(spec: str) -> tuple[dict[str, Any], str]:
    bundled = bundled_recipes()
    if spec in bundled:
        path = bundled[spec]
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise MedtuneError(
                f"Recipe '{spec}' is neither a bundled recipe ({', '.join(bundled)}) nor a file. "
                "Run 'medtune recipes' to list them."
            )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise MedtuneError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MedtuneError(f"{path}: a recipe must be a YAML mapping of keys to values.")
    return data, str(path)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``section.key=value`` override in place; the value is parsed as YAML."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise MedtuneError(f"--set '{assignment}': expected KEY=VALUE, e.g. --set train.lr=1e-4.")
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MedtuneError(f"--set '{assignment}': '{part}' is a value, not a section.")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        node[parts[-1]] = raw


def _known_keys(model: type[BaseModel], path: list[str]) -> list[str]:
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return list(model.model_fields)
        model = annotation
    return list(model.model_fields)


def _explain(error: dict[str, Any]) -> str:
    loc = [str(x) for x in error["loc"]]
    key = ".".join(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        known = ", ".join(_known_keys(Recipe, loc[:-1]))
        return f"unknown key '{key}' (known keys here: {known})"
    if kind == "missing":
        return f"missing required key '{key}'"
    got = error.get("input")
    return f"key '{key}': {error['msg'].lower()}, got {got!r}"


def validate_recipe(data: dict[str, Any], source: str = "recipe") -> Recipe:
    """Validate a recipe mapping, turning pydantic errors into one readable message."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_explain(e) for e in exc.errors())
        raise MedtuneError(f"{source}: invalid recipe: {problems}.") from None


def load_recipe(spec: str, overrides: list[str] | None = None) -> Recipe:
    """Load a bundled recipe by name or a YAML file, apply ``--set`` overrides, validate.

    Raises:
        MedtuneError: unknown recipe, bad YAML, unknown keys, wrong types, missing keys.
    """
    data, source = _read_yaml(spec)
    for assignment in overrides or []:
        apply_override(data, assignment)
    return validate_recipe(data, source)


def recipe_to_yaml(recipe: Recipe) -> str:
    """The fully resolved recipe (defaults filled in), as YAML."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
