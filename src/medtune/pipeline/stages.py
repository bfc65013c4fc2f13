"""The stage runner: a recipe's pipeline is a list of named stages, each skipped while its inputs are unchanged.

A ``Stage`` names what it reads (recipe keys, earlier stages, input files) and what it writes
(paths in the run folder). ``run_stages`` runs them in order and records each one's result in
``run.json`` with its fingerprint (``pipeline/fingerprint.py``). On the next command a stage is
skipped when its fingerprint is unchanged and its outputs still exist; otherwise its earlier
outputs are set aside, it runs, and they are deleted only once it succeeded (``pipeline/set_aside.py``).

* ``--resume``: a changed recipe is refused by the run folder (naming the keys); changed input
  files (or a new medtune version) are refused here, naming them.
* ``--resume --force``: the stages whose fingerprints changed run again, and so does every stage
  that reads their outputs (their fingerprints hold the upstream ones).
* ``--from STAGE``: that stage and every stage after it run again.
* A stage that finds no earlier finished result resumes its own partial work when the unfinished
  attempt had the same fingerprint (judging, candidates and training write incrementally);
  partial work of other inputs is set aside like finished outputs.

Several processes (``torchrun``, ``accelerate launch``): only the main process writes ``run.json``,
moves outputs and writes a stage's files; every process takes the same skip/run decisions from
the same records. A stage runs in one of two ways:

* on the main process only (the default: data, report): the others wait, then read what it wrote
  (a stage that failed there fails on them too, without running);
* on every process (``every_process``: training, evaluation), which share the work themselves
  (data-parallel batches, ``medtune.sharding.item_shard`` of the evaluated items) while the main
  process writes the results; all of them then adopt the main process's record of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from medtune import __version__
from medtune.errors import MedtuneError
from medtune.pipeline.fingerprint import hash_input, read_values, stage_fingerprint
from medtune.pipeline.set_aside import drop_set_aside, put_back, recover_set_aside, set_aside
from medtune.recipes.schema import Recipe
from medtune.runs import RunFolder, absolute_folders, flatten_settings, is_main_process
from medtune.sharding import barrier, gather_in_order
from medtune.train.distributed import world

__all__ = ["Stage", "check_from_stage", "is_main_process", "run_stages", "stage_fingerprints"]


@dataclass(frozen=True)
class Stage:
    """One step of a recipe.

    Attributes:
        name: the stage's name in ``run.json`` and for ``--from``.
        run: does the work, writes its outputs under the run folder and returns the JSON-able record
            kept in ``run.json`` (what ``run.done(name)`` returns, with ``fingerprint``, ``provenance``
            and ``finished`` added).
        reads: recipe keys it reads (``train.*`` = a whole section, ``*`` = every key).
        needs: earlier stages whose outputs it reads (their fingerprints enter its own).
        files: recipe keys naming input files or folders whose content enters its fingerprint.
        outputs: paths it writes, relative to the run folder (an absolute path stays as it is); set
            aside before it runs again (a folder keeps its ``checkpoints/``).
        every_process: under several processes, every one runs it and they share its work (training,
            sharded evaluation; only the main process writes); otherwise the main process runs it
            alone while the others wait.
    """

    name: str
    run: Callable[[], dict]
    reads: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    every_process: bool = False


def check_from_stage(from_stage: str | None, stages: Sequence[Stage], command: str = "this command") -> None:
    """Raise a MedtuneError when ``--from`` names no stage of ``stages``, listing them."""
    names = [s.name for s in stages]
    if from_stage is not None and from_stage not in names:
        raise MedtuneError(
            f"--from {from_stage}: {command} has no stage of that name; its stages, in order: {', '.join(names)}."
        )


def stage_fingerprints(run: RunFolder) -> dict[str, str]:
    """Each finished stage's fingerprint from ``run.json`` (stages recorded before fingerprints have none)."""
    stages = run.manifest().get("stages", {})
    return {name: record["fingerprint"] for name, record in stages.items() if "fingerprint" in record}


@dataclass(frozen=True)
class _Inputs:
    fingerprint: str
    files: dict[str, str | None]


def _inputs(stages: Sequence[Stage], recipe: Recipe) -> dict[str, _Inputs]:
    settings = flatten_settings(absolute_folders(recipe.model_dump(mode="json")))
    inputs: dict[str, _Inputs] = {}
    for stage in stages:
        unknown = [n for n in stage.needs if n not in inputs]
        if unknown:  # a programming error in a recipe's stage list, not a user's
            raise ValueError(f"stage {stage.name} needs {unknown}, which do not run before it")
        files = {key: hash_input(settings.get(key)) for key in stage.files}
        upstream = {n: inputs[n].fingerprint for n in stage.needs}
        fingerprint = stage_fingerprint(stage.name, read_values(settings, stage.reads), upstream, files)
        inputs[stage.name] = _Inputs(fingerprint, files)
    return inputs


def _changes(stage: Stage, record: dict[str, Any], inputs: _Inputs, recipe: Recipe) -> list[str]:
    """What changed in a stage's own inputs since its record (nothing listed: only upstream changed)."""
    provenance = record.get("provenance", {})
    changes = []
    if provenance.get("medtune", __version__) != __version__:
        changes.append(f"medtune {provenance['medtune']} -> {__version__}")
    spec = flatten_settings(recipe.model_dump(mode="json"))
    for key, digest in inputs.files.items():
        if provenance.get("files", {}).get(key, digest) != digest:
            changes.append(f"{key} ({spec.get(key)}): its content changed")
    if not changes:
        changes.append(
            f"stage {stage.name}: the stages it reads ({', '.join(stage.needs)}) ran again with other inputs"
            if stage.needs
            else f"stage {stage.name}: what it reads, as this version of medtune declares it"
        )
    return changes


def _accept_changed_inputs(
    run: RunFolder, stages: Sequence[Stage], inputs: dict[str, _Inputs], recipe: Recipe, log
) -> None:
    """Finished stages whose fingerprint changed: refused under ``--resume``, forgotten under ``--force``.

    (A changed recipe key never gets here: the run folder refused it, or ``--force`` forgot its stages.)
    """
    stale, changes = [], []
    for stage in stages:
        record = run.done(stage.name)
        if (
            record is None
            or record.get("fingerprint", inputs[stage.name].fingerprint) == inputs[stage.name].fingerprint
        ):
            continue
        if not any(n in stale for n in stage.needs):  # else the upstream stage's change explains it
            changes += [c for c in _changes(stage, record, inputs[stage.name], recipe) if c not in changes]
        stale.append(stage.name)
    if not stale:
        return
    if run.force:
        run.forget_stages(stale, changes, log)
        return
    raise MedtuneError(
        f"The inputs of finished stages changed since the run in {run.path} used them ({'; '.join(changes)}), "
        f"so --resume would mix results of two inputs. Pass --resume --force to re-run the stages they affect "
        f"({', '.join(stale)}), --overwrite to start the run again, or --set run_dir=<new folder> to keep this "
        "run and start another."
    )


def _outputs_missing(run: RunFolder, record: dict[str, Any]) -> list[str]:
    written = record.get("provenance", {}).get("outputs", [])
    return [path for path in written if not (run.path / path).exists()]


def _is_current(run: RunFolder, stage: Stage, record: dict[str, Any] | None, fingerprint: str, log) -> bool:
    """A finished result that may be kept: same fingerprint, its outputs there, no re-run left unfinished."""
    if record is None or record.get("fingerprint", fingerprint) != fingerprint or run.attempt(stage.name):
        return False
    if missing := _outputs_missing(run, record):
        log(f"Stage {stage.name}: {', '.join(missing)} no longer in {run.path}; running it again.")
        return False
    return True


def _run_one(run: RunFolder, stage: Stage, inputs: _Inputs, record: dict[str, Any] | None) -> dict[str, Any]:
    """Run a stage (on the main process alone or on every process, as it says) and return its record."""
    if world()[1] == 1:
        return _run_here(run, stage, inputs, record)
    if stage.every_process:
        result = _run_here(run, stage, inputs, record, start=barrier)
        barrier()  # the main process recorded it
        run.adopt_written()
        return result if run.writes else run.done(stage.name) or {}
    if run.writes:
        try:
            result = _run_here(run, stage, inputs, record)
        except BaseException:
            _main_outcome(False)
            raise
        _main_outcome(True)
        return result
    if not _main_outcome(None):
        raise MedtuneError(
            f"Stage {stage.name} failed on the main process (rank 0), which shows why; this process stops too."
        )
    run.adopt_written()
    return run.done(stage.name) or {}


def _main_outcome(succeeded: bool | None) -> bool:
    """Whether the main process's stage succeeded, told to every process (the others wait for it here)."""
    return bool(gather_in_order([succeeded])[0])


def _run_here(
    run: RunFolder,
    stage: Stage,
    inputs: _Inputs,
    record: dict[str, Any] | None,
    start: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run the stage in this process: set its earlier outputs aside, run it, record it (``start``: then begin)."""
    resumes_own_work = record is None and run.attempt(stage.name) == inputs.fingerprint
    if run.writes:
        if not resumes_own_work:
            set_aside(run, stage.name, [run.path / o for o in stage.outputs], record)
        run.start_attempt(stage.name, inputs.fingerprint)
    start()  # several processes: the others start once the earlier outputs are out of the way
    try:
        result = stage.run()
    except BaseException:
        if run.writes:
            put_back(run, stage.name)
        raise
    written = [o for o in stage.outputs if (run.path / o).exists()]
    provenance = {"medtune": __version__, "files": inputs.files, "outputs": written}
    run.mark_done(stage.name, {**result, "fingerprint": inputs.fingerprint, "provenance": provenance})
    if run.writes:
        drop_set_aside(run, stage.name)
    return run.done(stage.name) or {}


def run_stages(
    run: RunFolder,
    recipe: Recipe,
    stages: Sequence[Stage],
    from_stage: str | None = None,
    log=print,
    only: Sequence[str] | None = None,
) -> dict[str, dict]:
    """Run a recipe's stages in order in an opened run folder; skip those whose results are current.

    Args:
        run: the run folder, opened (``RunFolder.open``) with the command's --resume/--force.
        recipe: the resolved recipe; its values enter each stage's fingerprint.
        stages: every stage of the recipe, in run order.
        from_stage: ``--from``: run this stage and every stage after it again.
        only: the names of the stages this command runs (``medtune train``: data and train); the
            others are still checked, so that their stale results are refused or forgotten now.
        log: where progress lines go.
    Returns:
        Each stage's record, by name (from ``run.json`` for the skipped ones).
    Raises:
        MedtuneError: ``from_stage`` is not a stage; finished stages' input files changed under
            ``--resume`` without ``--force``.
    """
    names = [s.name for s in stages]
    runs = [s for s in stages if only is None or s.name in only]
    check_from_stage(from_stage, runs)
    if run.writes:
        recover_set_aside(run, log)
    inputs = _inputs(stages, recipe)
    first_forced = names.index(from_stage) if from_stage else len(stages)
    _accept_changed_inputs(run, stages[:first_forced], inputs, recipe, log)
    if world()[1] > 1:  # set-aside outputs put back, forced changes: every process decides from the same records
        barrier()
        run.adopt_written()
    results: dict[str, dict] = {}
    for stage in runs:
        record = run.done(stage.name)
        if names.index(stage.name) < first_forced and _is_current(
            run, stage, record, inputs[stage.name].fingerprint, log
        ):
            log(f"Stage {stage.name}: inputs unchanged (fingerprint {inputs[stage.name].fingerprint[:12]}), skipped.")
            results[stage.name] = record
        else:
            results[stage.name] = _run_one(run, stage, inputs[stage.name], record)
    return results
