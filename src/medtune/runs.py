"""The run folder: where a recipe's stages write, what they finished, and when to refuse or skip.

``runs/<name>/run.json`` records the recipe name and the stages done (with their outputs), so
``--resume`` skips finished stages and a second run into the same folder is refused unless asked.
Nothing here deletes earlier outputs unless the user passed ``--overwrite``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError

MANIFEST = "run.json"


class RunFolder:
    def __init__(self, path: Path, recipe_name: str):
        self.path = path
        self.recipe_name = recipe_name

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def open(self, resume: bool, overwrite: bool) -> None:
        """Create the folder, or accept an existing one only with ``resume`` or ``overwrite``."""
        if self.path.exists() and any(self.path.iterdir()):
            if overwrite:
                shutil.rmtree(self.path)
            elif not resume:
                owner = self._read().get("recipe", "another run")
                raise MedtuneError(
                    f"The run folder {self.path} already holds a run ({owner}). Pass --resume to "
                    "continue it, --overwrite to replace it, or --set run_dir=<new folder>."
                )
            elif self._read().get("recipe") not in (None, self.recipe_name):
                raise MedtuneError(
                    f"{self.path} holds a run of recipe '{self._read()['recipe']}', not "
                    f"'{self.recipe_name}'; --resume only continues the same recipe."
                )
        self.path.mkdir(parents=True, exist_ok=True)
        data = self._read()
        data.setdefault("recipe", self.recipe_name)
        data.setdefault("stages", {})
        self._write(data)

    def _read(self) -> dict[str, Any]:
        if self.manifest_path.is_file():
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        return {}

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(self.manifest_path)

    def done(self, stage: str) -> dict[str, Any] | None:
        """The recorded result of a finished stage, or None."""
        return self._read().get("stages", {}).get(stage)

    def mark_done(self, stage: str, result: dict[str, Any]) -> None:
        data = self._read()
        data.setdefault("stages", {})[stage] = {**result, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._write(data)

    def sub(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)
