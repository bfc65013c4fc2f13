"""Earlier outputs of a stage that runs again: moved aside first, deleted only once it succeeded.

Before a stage runs again, its outputs are renamed beside themselves (``eval/.eval_base.previous``;
a folder keeps its ``checkpoints/``, which ``--resume`` continues training from). ``run.json``
records what was moved, and the stage record the outputs belong to, before anything moves, so:

* the stage fails: what it wrote is removed and the earlier outputs are put back (``put_back``);
* it succeeds: its record is written, then the earlier outputs are deleted (``drop_set_aside``);
* the process is killed in between: the next command finishes the job (``recover_set_aside``):
  put back when the stage's record is still the one they belong to, else delete them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from medtune.runs import CHECKPOINTS, RunFolder

# run.json: {stage: {"record": the record the outputs belong to, "moved": [[path, aside]], "outputs": [path]}}
SECTION = "set_aside"


def _aside_path(path: Path) -> Path:
    aside = path.with_name(f".{path.name}.previous")
    n = 1
    while aside.exists() or aside.is_symlink():
        n += 1
        aside = path.with_name(f".{path.name}.previous-{n}")
    return aside


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _entries(folder: Path) -> list[Path]:
    """A folder's entries that move with it (all but the training checkpoints)."""
    return [p for p in folder.iterdir() if p.name != CHECKPOINTS] if folder.is_dir() else []


def set_aside(run: RunFolder, stage: str, outputs: list[Path], record: dict[str, Any] | None) -> bool:
    """Move the existing ``outputs`` of ``stage`` aside; returns whether anything was moved.

    The run folder itself (``output_dir`` may be the run folder) and the folders holding it are never moved.
    """
    folder = run.path.resolve()
    outputs = [p for p in outputs if p.resolve() != folder and p.resolve() not in folder.parents]
    moved = [[str(p), str(_aside_path(p))] for p in outputs if p.exists() and (p.is_file() or _entries(p))]
    if not moved:
        return False
    entry = {"record": record, "moved": moved, "outputs": [str(p) for p in outputs]}
    run.update_manifest(lambda data: data.setdefault(SECTION, {}).__setitem__(stage, entry))
    for path, aside in moved:
        original, target = Path(path), Path(aside)
        if original.is_dir():
            target.mkdir()
            for entry in _entries(original):
                entry.rename(target / entry.name)
        else:
            original.rename(target)
    return True


def _restore(path: Path, aside: Path) -> None:
    if not aside.exists():
        return  # the move never happened: the output is where it was
    if aside.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        for entry in _entries(path):  # what the failed attempt wrote
            _remove(entry)
        for entry in list(aside.iterdir()):
            entry.rename(path / entry.name)
        aside.rmdir()
    else:
        _remove(path)
        aside.rename(path)


def _forget(run: RunFolder, stage: str, attempt_too: bool) -> None:
    def change(data: dict[str, Any]) -> None:
        for section in (SECTION, "attempts") if attempt_too else (SECTION,):
            entries = data.get(section, {})
            entries.pop(stage, None)
            if section in data and not entries:
                del data[section]

    run.update_manifest(change)


def put_back(run: RunFolder, stage: str) -> bool:
    """After ``stage`` failed: remove what it wrote and put its earlier outputs back.

    Returns False when nothing had been set aside (then its partial work stays, for it to resume).
    """
    entry = run.manifest().get(SECTION, {}).get(stage)
    if entry is None:
        return False
    moved = dict(entry["moved"])
    for path in entry["outputs"]:
        if path in moved:
            _restore(Path(path), Path(moved[path]))
        elif Path(path).is_dir():
            for written in _entries(Path(path)):
                _remove(written)
        else:
            _remove(Path(path))
    _forget(run, stage, attempt_too=True)  # the outputs are the earlier ones again: no partial work
    return True


def drop_set_aside(run: RunFolder, stage: str) -> None:
    """After ``stage`` succeeded (its record written): delete its earlier outputs."""
    entry = run.manifest().get(SECTION, {}).get(stage)
    if entry is None:
        return
    for _, aside in entry["moved"]:
        _remove(Path(aside))
    _forget(run, stage, attempt_too=False)


def recover_set_aside(run: RunFolder, log=print) -> None:
    """Finish what a killed command left: put back or delete the outputs it had set aside."""
    for stage, entry in run.manifest().get(SECTION, {}).items():
        if run.done(stage) == entry["record"]:
            put_back(run, stage)
            log(f"Put back the outputs of stage {stage} that an interrupted re-run had set aside.")
        else:
            drop_set_aside(run, stage)
