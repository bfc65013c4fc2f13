"""A stage's fingerprint: one hash of everything its result depends on.

fingerprint = sha256 of (medtune's version, the stage's name, the values of the recipe keys it
reads, the fingerprints of the stages whose outputs it reads, the content hash of its input files).
Like DVC's ``dvc.lock``, only the settings a stage names enter its own fingerprint, so a change to
``train.lr`` leaves the data and the base evaluation alone while everything downstream of training
changes through the upstream fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medtune import __version__
from medtune.data.io import DEMO_PREFIX, HF_PREFIX, resolve_data_path
from medtune.runs import reads_key

CHUNK = 1 << 20  # files are hashed in 1 MiB reads: a large corpus never sits in memory whole


def _hash_file(path: Path, digest) -> None:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)


def hash_input(spec: str | None) -> str | None:
    """The content hash of the data a recipe key names (None when the key is unset).

    A file: its bytes. A folder: each file's path relative to the folder and its bytes, in sorted
    order. ``hf:`` datasets: the spec string (the hub is not asked). ``demo:`` files: the spec and
    the bundled file. A path that does not exist hashes as missing, so the stage that reads it runs
    again (and reports the missing file in its own words).
    """
    if spec is None:
        return None
    digest = hashlib.sha256(spec.encode("utf-8") + b"\0")
    if spec.startswith(HF_PREFIX):
        return digest.hexdigest()
    path = resolve_data_path(spec) if spec.startswith(DEMO_PREFIX) else Path(spec).expanduser()
    if path.is_file():
        _hash_file(path, digest)
    elif path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
            _hash_file(file, digest)
            digest.update(b"\0")
    else:
        digest.update(b"missing")
    return digest.hexdigest()


def read_values(settings: Mapping[str, Any], reads: tuple[str, ...]) -> dict[str, Any]:
    """The values of the flattened recipe keys that the patterns in ``reads`` match."""
    return {key: value for key, value in settings.items() if any(reads_key(p, key) for p in reads)}


def stage_fingerprint(
    name: str,
    values: Mapping[str, Any],
    upstream: Mapping[str, str],
    files: Mapping[str, str | None],
) -> str:
    """sha256 over medtune's version, the stage name, the recipe values it reads, the upstream
    stages' fingerprints and its input files' content hashes, in a canonical JSON form."""
    canonical = json.dumps(
        {"medtune": __version__, "stage": name, "reads": values, "needs": upstream, "files": files},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
