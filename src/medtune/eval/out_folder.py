"""The ``medtune eval --out`` folder: written only when it is new, empty, or an earlier run of the same evaluation.

``eval`` writes ``metrics.json`` and ``outputs.jsonl``; a trained model folder also holds a
``metrics.json`` (its training figures), so writing into any folder could replace a user's file.
Each finished evaluation therefore leaves ``evaluation.json`` naming what it scored (task, data,
and the model or the outputs file); only a folder holding the same evaluation may be written
again, and only with ``--overwrite``. A failed evaluation leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from medtune.data.io import DEMO_PREFIX, HF_PREFIX, write_jsonl
from medtune.errors import MedtuneError
from medtune.sharding import main_process_first

IDENTITY_FILE = "evaluation.json"


@dataclass(frozen=True)
class EvaluationIdentity:
    """What an evaluation scored; local paths are made absolute so the same files compare equal."""

    task: str
    data: str
    model: str | None = None  # the model scored, or else
    outputs: str | None = None  # the file of existing outputs scored (eval --outputs)

    @classmethod
    def of(cls, task: str, data: str, model: str | None = None, outputs: str | None = None) -> EvaluationIdentity:
        """The identity of ``eval --task TASK --data DATA (--model MODEL | --outputs OUTPUTS)``."""
        return cls(task, _absolute(data), model and _absolute(model), outputs and _absolute(outputs))

    def describe(self) -> str:
        scored = f"model {self.model}" if self.model is not None else f"outputs {self.outputs}"
        return f"{self.task} evaluation of {scored} on {self.data}"


def _absolute(spec: str) -> str:
    """A local path as an absolute path; model names, hub ids, demo: and hf: specs as written."""
    if spec.startswith((DEMO_PREFIX, HF_PREFIX)):
        return spec
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def check_eval_out(out: Path, identity: EvaluationIdentity, overwrite: bool) -> None:
    """Refuse an ``--out`` folder whose files eval could replace, unless they are this same evaluation's.

    Called by every eval task before the model loads.

    Args:
        out: the folder eval will write ``metrics.json`` and ``outputs.jsonl`` into.
        identity: what this evaluation scores.
        overwrite: ``--overwrite``: replace an earlier run of the same evaluation.
    Raises:
        MedtuneError: ``out`` is a file; a non-empty folder without an ``evaluation.json`` (someone
            else's files, e.g. a trained model); a folder holding another evaluation; or this same
            evaluation without ``overwrite``.
    """
    if out.exists() and not out.is_dir():
        raise MedtuneError(
            f"--out {out} is a file; eval writes a folder (metrics.json, outputs.jsonl). Give a new folder."
        )
    found = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not found:
        return
    earlier = _read_identity(out)
    if earlier is None:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise MedtuneError(
            f"--out {out} is not empty ({shown}) and holds no earlier medtune evaluation, so eval would "
            "replace files it did not write (a trained model folder has its own metrics.json). Give a new "
            "or empty folder for --out."
        )
    if earlier != identity:
        raise MedtuneError(
            f"--out {out} holds another evaluation ({earlier.describe()}); this one is a {identity.describe()}. "
            "Give another --out folder to keep both (--overwrite only replaces the same evaluation)."
        )
    if not overwrite:
        raise MedtuneError(
            f"--out {out} already holds this evaluation ({identity.describe()}). Pass --overwrite to "
            "replace its results, or give another --out folder."
        )


def write_evaluation(out_dir: Path, rows: Sequence[dict], metrics: dict) -> None:
    """Write an evaluation's ``outputs.jsonl`` (one row per item, in item order) and ``metrics.json`` to ``out_dir``.

    Under several processes (each scored its share of the items, then gathered them) the main process
    writes the files while the others wait, so every process returns once they are there.
    """
    with main_process_first() as main:
        if main:
            out_dir.mkdir(parents=True, exist_ok=True)
            write_jsonl(out_dir / "outputs.jsonl", rows)
            (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False), encoding="utf-8")


def record_evaluation(out: Path, identity: EvaluationIdentity) -> None:
    """Write ``evaluation.json`` into ``out`` (created), so a later eval recognises the folder as this evaluation's."""
    out.mkdir(parents=True, exist_ok=True)
    (out / IDENTITY_FILE).write_text(json.dumps(asdict(identity), indent=2, ensure_ascii=False), encoding="utf-8")


def _read_identity(out: Path) -> EvaluationIdentity | None:
    try:
        return EvaluationIdentity(**json.loads((out / IDENTITY_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # missing, not JSON, or other fields: not ours
        return None
