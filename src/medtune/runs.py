"""The run folder: where a recipe's stages write, what they finished, and when to refuse, skip or re-run.

``runs/<name>/run.json`` records the recipe name, the resolved recipe and its hash, and the stages
done (each stage's record, with its fingerprint: ``pipeline/stages.py`` decides skip and re-run
from those). This module alone decides what a command may do with the folder:

* a new run goes only into an empty folder, or one whose earlier attempt finished no stage;
* ``--resume`` skips finished stages but refuses a changed recipe, naming the changed keys;
  ``--resume --force`` accepts it and forgets the finished stages that read a changed key (and
  every stage that reads their outputs), recording that in ``run.json``;
* ``--overwrite`` replaces only a run medtune made, and deletes the old run only once the new
  run's data stage has succeeded (until then it waits beside the folder, put back on failure);
* the model folder (``output_dir``) is written only when it is empty or was made by medtune.

``run.json`` is always replaced whole (written to a temporary file, then renamed), so a crash
never leaves it half-written and never loses a finished stage's record.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from medtune.errors import MedtuneError
from medtune.models.loading import MODEL_INFO_FILE

MANIFEST = "run.json"
CHECKPOINTS = "checkpoints"  # train.setup.fit keeps resumable checkpoints in <output_dir>/checkpoints
CHECKPOINT_ENTRIES = {"last", "last.tmp", "last.old"}  # all that train.loop writes in that folder


class StageInputs(Protocol):
    """What the run folder needs to know of a stage (``pipeline.stages.Stage`` is one)."""

    name: str
    reads: tuple[str, ...]  # recipe keys: "section.*" = a whole section, "*" = every key
    needs: tuple[str, ...]  # earlier stages whose outputs it reads


def is_main_process() -> bool:
    """False on the processes other than the first of a multi-process run (torchrun, accelerate).

    Reads ``RANK``, then ``LOCAL_RANK``; absent means a single process, which is the main one. Only
    the main process writes stage outputs, caches and ``run.json``.
    """
    for variable in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(variable, "").strip()
        if value:
            return value == "0"
    return True


def reads_key(pattern: str, key: str) -> bool:
    """Whether a stage reading ``pattern`` (``train.*``, ``*``, ``model``) reads the dotted ``key``."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return key.startswith(pattern[:-1])
    return key == pattern or key.startswith(pattern + ".")


def stages_to_rerun(
    changed_keys: Iterable[str], stages: Sequence[StageInputs], recorded: Iterable[str] = ()
) -> list[str]:
    """The stages that read a changed key, and every stage reading their outputs, in run order.

    ``recorded`` adds finished stage names that ``stages`` does not list (from another command or
    an older medtune): they are assumed to read every key.
    """
    changed = list(changed_keys)
    known = {s.name for s in stages}
    stale: list[str] = []
    for stage in stages:
        if any(reads_key(p, k) for p in stage.reads for k in changed) or any(n in stale for n in stage.needs):
            stale.append(stage.name)
    return stale + [name for name in recorded if name not in known and changed]


def flatten_settings(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested recipe settings as dotted keys (``train.lora.r``); lists stay whole values."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            flat.update(flatten_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def recipe_hash(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the resolved recipe in a canonical JSON form (sorted keys)."""
    canonical = json.dumps(settings, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


_UNSET = object()


def _show(value: Any) -> str:
    if value is _UNSET:
        return "(unset)"
    return value if isinstance(value, str) and value else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class SettingChange:
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.old)} -> {_show(self.new)}"


def changed_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[SettingChange]:
    """The dotted keys whose values differ between two resolved recipes, in the new recipe's order."""
    before, after = flatten_settings(old), flatten_settings(new)
    keys = [*after, *(k for k in before if k not in after)]
    return [
        SettingChange(k, before.get(k, _UNSET), after.get(k, _UNSET))
        for k in keys
        if before.get(k, _UNSET) != after.get(k, _UNSET)
    ]


def _is_checkpoint_folder(path: Path) -> bool:
    return path.is_dir() and {p.name for p in path.iterdir()} <= CHECKPOINT_ENTRIES


def made_by_medtune(folder: Path) -> bool:
    """Whether a model folder holds a medtune model or a medtune training's checkpoints."""
    return (folder / MODEL_INFO_FILE).is_file() or _is_checkpoint_folder(folder / CHECKPOINTS)


def remove_checkpoints(output_dir: Path) -> None:
    """Delete medtune's checkpoint folder in ``output_dir`` (only when it holds nothing but checkpoints)."""
    checkpoints = output_dir / CHECKPOINTS
    if _is_checkpoint_folder(checkpoints):
        shutil.rmtree(checkpoints)


def _is_empty(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


class RunFolder:
    """The run folder and its ``run.json``.

    Args:
        path: the folder (``recipe.run_dir``).
        recipe_name: the recipe that runs in it.
        writes: whether this process writes ``run.json`` (default: only the main process does;
            the others run every check and keep ``run.json`` in memory).
    """

    def __init__(self, path: Path, recipe_name: str, writes: bool | None = None):
        self.path = path
        self.recipe_name = recipe_name
        self.writes = is_main_process() if writes is None else writes
        self.output_dir: Path | None = None  # the recipe's model folder, set by open()
        self.resume_training = False  # set by open(): may training continue from its checkpoint?
        self.resume = False  # set by open(): the command continues the run in the folder
        self.force = False  # set by open(): changed inputs are accepted (their stages re-run)
        self._unwritten: dict[str, Any] | None = None  # run.json of a process that does not write

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def open(
        self,
        settings: dict[str, Any],
        resume: bool = False,
        overwrite: bool = False,
        force: bool = False,
        stages: Sequence[StageInputs] = (),
        log=print,
    ) -> None:
        """Create the run folder, or reopen it as asked; refuse whatever could lose work or mix recipes.

        Every check runs before anything is moved or written.

        Args:
            settings: the resolved recipe (``Recipe.model_dump(mode="json")``), recorded with its hash
                (``run_dir`` and ``output_dir`` made absolute); its ``output_dir`` is checked too.
            resume: continue the run: keep finished stages, resume training from its checkpoint.
            overwrite: replace an earlier medtune run in the folder (deleted once the new data stage succeeds).
            force: with ``resume``, accept a changed recipe and forget the finished stages it affects.
            stages: the recipe's stages in run order (what each reads), to tell which finished stages a
                changed key affects; a finished stage they do not list is taken to read every key.
        Raises:
            MedtuneError: a folder or ``output_dir`` medtune did not make; a run already there without
                ``--resume``/``--overwrite``; a different recipe under ``--resume`` (without ``--force``).
        """
        if force and not resume:
            raise MedtuneError("--force only applies with --resume (it accepts a changed recipe); add --resume.")
        if resume and overwrite:
            raise MedtuneError(
                "--resume continues the run in its folder and --overwrite replaces it; pass one of them "
                "(to continue an interrupted --overwrite run, pass --resume alone)."
            )
        if self.writes:
            self._put_back_failed_replacement(log)
        settings = absolute_folders(settings)
        manifest = self._read()
        finished = manifest.get("stages", {})
        if finished:
            self._check_reuse(manifest, resume, overwrite)
        elif not self.manifest_path.is_file() and not _is_empty(self.path):
            raise MedtuneError(
                f"The run folder {self.path} holds files but no {MANIFEST}, so medtune did not make it; "
                "medtune writes a run only into a new or empty folder or one of its own runs, and never deletes "
                "it, whatever the options. Choose another folder: --set run_dir=<new folder>."
            )
        keep = bool(finished) and not overwrite  # the finished stages this command continues
        recorded = absolute_folders(self._recorded_settings(manifest)) if keep else {}
        self._check_output_dir(Path(settings["output_dir"]), recorded.get("output_dir"), resume, overwrite)
        changes = changed_settings(recorded, settings) if keep else []
        stale = stages_to_rerun([c.key for c in changes], stages, finished) if changes else []
        rerun = [s for s in stale if s in finished or s == "train"]
        if changes and not force:
            raise _changed_recipe_error(self.path, changes, rerun)

        # Every check passed: only now is anything moved or rewritten.
        if finished and overwrite:
            manifest = {"replacing": str(self._set_aside())} if self.writes else {}
        elif not keep:
            manifest = {}  # a new run, or an attempt that finished no stage: nothing to protect
        if changes:
            forced = _forget_stale_stages(manifest, [str(c) for c in changes], stale, rerun)
            forced.update(old_hash=manifest.get("recipe_hash"), new_hash=recipe_hash(settings))
            log(f"--force: the recipe changed ({_list_changes(changes)}); re-running {', '.join(rerun)}.")
        manifest.update(recipe=self.recipe_name, recipe_hash=recipe_hash(settings), resolved_recipe=settings)
        manifest.setdefault("stages", {})
        if self.writes:
            self.path.mkdir(parents=True, exist_ok=True)
        self._write(manifest)
        self.output_dir = Path(settings["output_dir"])
        self.resume, self.force = resume, force
        self.resume_training = resume and keep and not manifest.get("train_restart", False)

    def _check_reuse(self, manifest: dict[str, Any], resume: bool, overwrite: bool) -> None:
        owner = manifest.get("recipe", "another recipe")
        if not (resume or overwrite):
            raise MedtuneError(
                f"The run folder {self.path} already holds a run ({owner}). Pass --resume to continue it, "
                "--overwrite to replace it, or --set run_dir=<new folder>."
            )
        if resume and owner != self.recipe_name:
            raise MedtuneError(
                f"{self.path} holds a run of recipe '{owner}', not '{self.recipe_name}'; --resume only continues "
                "the same recipe. Pass --overwrite to replace that run, or --set run_dir=<new folder>."
            )

    def _check_output_dir(self, output_dir: Path, recorded: str | None, resume: bool, overwrite: bool) -> None:
        out, run = output_dir.resolve(), self.path.resolve()
        if out == run or run in out.parents or _is_empty(out):
            return  # inside the run folder, the run folder's checks apply
        if not made_by_medtune(out):
            raise MedtuneError(
                f"output_dir {output_dir} holds files that medtune did not write (no {MODEL_INFO_FILE}, no "
                f"{CHECKPOINTS}/ of a training), so medtune will not put a model there, whatever the options. "
                "Choose a new or empty folder: --set output_dir=<folder>."
            )
        if overwrite or (resume and recorded is not None and Path(recorded).resolve() == out):
            return
        raise MedtuneError(
            f"output_dir {output_dir} already holds a medtune model"
            f"{' that this run did not train' if resume else ''}. Pass --overwrite to replace it, or choose "
            "another folder: --set output_dir=<folder>."
        )

    def _recorded_settings(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if "resolved_recipe" in manifest:
            return manifest["resolved_recipe"]
        legacy = self.path / "recipe.yaml"  # a run.json from before recipes were recorded in it
        return yaml.safe_load(legacy.read_text(encoding="utf-8")) if legacy.is_file() else {}

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f".{self.path.name}.replaced-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f".{self.path.name}.replaced-{stamp}-{n}")
        self.path.rename(aside)
        return aside

    def _put_back_failed_replacement(self, log) -> None:
        # An --overwrite killed before its data stage finished left the old run beside the folder.
        if self.put_back_replaced_run():
            log(f"Put back the run that an interrupted --overwrite had set aside in {self.path}.")

    def put_back_replaced_run(self) -> bool:
        """After an ``--overwrite`` failed before finishing a stage, restore the run it was replacing.

        Returns True when a run was put back. The folder then holds only what the failed attempt wrote
        (it finished nothing), which is deleted.
        """
        if not self.writes:  # the main process alone moves and deletes run folders
            return False
        manifest = self._read()
        aside = Path(manifest.get("replacing", ""))
        if not manifest.get("replacing") or manifest.get("stages") or not aside.is_dir():
            return False
        shutil.rmtree(self.path)
        aside.rename(self.path)
        return True

    def start_training(self) -> None:
        """Called as the train stage begins (after the data stage): unless training resumes, its old
        checkpoints are stale and are deleted."""
        if not self.resume_training and self.output_dir is not None and self.writes:
            remove_checkpoints(self.output_dir)
        manifest = self._read()
        if manifest.pop("train_restart", None):
            self._write(manifest)

    def _read(self) -> dict[str, Any]:
        if self._unwritten is not None:
            return json.loads(json.dumps(self._unwritten))  # a copy, as a read from disk would be
        if self.manifest_path.is_file():
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        return {}

    def _write(self, data: dict[str, Any]) -> None:
        if not self.writes:
            self._unwritten = json.loads(json.dumps(data))
            return
        # Atomic: a crash leaves the old run.json or the new one, never a half-written file.
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
        tmp.replace(self.manifest_path)

    def adopt_written(self) -> None:
        """On a process that does not write: take ``run.json`` as the main process wrote it.

        Called where every process waits for the main one (after it opened the folder or finished a
        stage), so that all of them decide what to skip or run from the same records.
        """
        if not self.writes:
            self._unwritten = None
            self._unwritten = self._read()

    def manifest(self) -> dict[str, Any]:
        """A copy of ``run.json`` as it is now (empty before the folder is opened)."""
        return self._read()

    def update_manifest(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to ``run.json`` and write it back at once (atomically)."""
        data = self._read()
        change(data)
        self._write(data)

    def done(self, stage: str) -> dict[str, Any] | None:
        """The recorded result of a finished stage, or None."""
        return self._read().get("stages", {}).get(stage)

    def mark_done(self, stage: str, result: dict[str, Any]) -> None:
        """Record a finished stage (its attempt is over); the first one finished after ``--overwrite``
        deletes the replaced run."""
        data = self._read()
        data.setdefault("stages", {})[stage] = {**result, "finished": _now()}
        _pop_entry(data, "attempts", stage)
        replaced = data.pop("replacing", None)
        self._write(data)
        if replaced and self.writes:
            shutil.rmtree(replaced, ignore_errors=True)

    def attempt(self, stage: str) -> str | None:
        """The fingerprint of the unfinished attempt at ``stage`` whose partial work may be in its
        outputs (None: no attempt recorded, so whatever is there is not known to be its own)."""
        return self._read().get("attempts", {}).get(stage)

    def start_attempt(self, stage: str, fingerprint: str) -> None:
        """Record that ``stage`` starts with this fingerprint: partial work it writes belongs to it."""
        self.update_manifest(lambda data: data.setdefault("attempts", {}).__setitem__(stage, fingerprint))

    def end_attempt(self, stage: str) -> None:
        """Forget the attempt at ``stage`` (its partial work was removed)."""
        self.update_manifest(lambda data: _pop_entry(data, "attempts", stage))

    def forget_stages(self, stale: list[str], changed: list[str], log=print) -> None:
        """``--force`` accepted changed inputs: drop the records of the ``stale`` stages, so that they
        run again, and record the change in ``run.json`` (``forced_changes``)."""
        data = self._read()
        rerun = [s for s in stale if s in data.get("stages", {})]
        _forget_stale_stages(data, changed, stale, rerun)
        self._write(data)
        if "train" in stale:
            self.resume_training = False
        log(f"--force: the inputs changed ({'; '.join(changed)}); re-running {', '.join(rerun)}.")

    def sub(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)


def _forget_stale_stages(
    manifest: dict[str, Any], changed: list[str], stale: list[str], rerun: list[str]
) -> dict[str, Any]:
    """Drop the records of stages a forced change reaches, and record the change in the manifest."""
    for stage in stale:
        manifest["stages"].pop(stage, None)
        _pop_entry(manifest, "attempts", stage)  # partial work of the old inputs is not resumed
    if "train" in stale:
        manifest["train_restart"] = True  # the old recipe's checkpoints must not be resumed
    forced = {"time": _now(), "changed": changed, "invalidated": rerun}
    manifest.setdefault("forced_changes", []).append(forced)
    return forced


def _pop_entry(manifest: dict[str, Any], section: str, key: str) -> None:
    """Remove ``manifest[section][key]``, and the section once it is empty."""
    entries = manifest.get(section, {})
    entries.pop(key, None)
    if section in manifest and not entries:
        del manifest[section]


def absolute_folders(settings: dict[str, Any]) -> dict[str, Any]:
    """``run_dir`` and ``output_dir`` as absolute paths: ``./runs/a`` and ``runs/a`` are the same run."""
    folders = {k: str(Path(settings[k]).resolve()) for k in ("run_dir", "output_dir") if settings.get(k)}
    return {**settings, **folders}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _list_changes(changes: list[SettingChange], most: int = 10) -> str:
    shown = "; ".join(str(c) for c in changes[:most])
    return shown + (f"; and {len(changes) - most} more" if len(changes) > most else "")


def _changed_recipe_error(path: Path, changes: list[SettingChange], rerun: list[str]) -> MedtuneError:
    afresh = "; training starts from step 0" if "train" in rerun else ""
    return MedtuneError(
        f"The recipe changed since the run in {path} began ({_list_changes(changes)}), so --resume would mix "
        f"results of two recipes. Pass --resume --force to accept the change and re-run the stages it affects "
        f"({', '.join(rerun) or 'no finished stage'}{afresh}), --overwrite to start the run again, or "
        "--set run_dir=<new folder> to keep this run and start another."
    )
