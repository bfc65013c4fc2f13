"""The embedded-model cache is built by one process: others (ranks of a launch, parallel commands) wait for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from medtune.errors import MedtuneError
from medtune.models.gguf import BUILD_MARKER, _has_weights, build_once

WORKER = Path(__file__).with_name("cache_builder.py")


def _start(target: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(target), str(log)], env=env, stdout=subprocess.PIPE, text=True
    )


def test_two_processes_building_the_same_empty_cache_build_it_once(tmp_path):
    target, log = tmp_path / "cache" / "models" / "tiny", tmp_path / "builds.log"
    first, second = _start(target, log), _start(target, log)
    outputs = [p.communicate(timeout=60)[0].strip() for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0]
    assert outputs == [str(target), str(target)]  # both got the folder ...
    builders = log.read_text(encoding="utf-8").split()
    assert len(builders) == 1  # ... built by one of them
    assert (target / "model.safetensors").read_bytes() == f"weights of {builders[0]}".encode()
    # nothing half-built is left: only the folder and its lock file
    assert sorted(p.name for p in target.parent.iterdir()) == [".tiny.lock", "tiny"]


def test_a_built_folder_is_returned_without_building_again(tmp_path):
    target = tmp_path / "tiny"
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"w")

    assert build_once(target, build, _has_weights, log=lambda _: None) == target
    assert build_once(target, build, _has_weights, log=lambda _: None) == target
    assert len(calls) == 1 and calls[0].name == "tiny" and calls[0].parent != tmp_path


def test_a_killed_build_leaves_nothing_the_next_one_keeps(tmp_path):
    target = tmp_path / "tiny"
    stale = tmp_path / ".tiny.build-killed"
    (stale / "tiny").mkdir(parents=True)
    (stale / "tiny" / "config.json").write_text("{}")  # a build killed before its weights were written
    target.mkdir()  # and a folder without weights: not a finished build

    def build(out: Path) -> None:
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"new")

    build_once(target, build, _has_weights, log=lambda _: None)
    assert (target / "model.safetensors").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.lock", "tiny"]


def test_a_failed_build_leaves_no_folder(tmp_path):
    target = tmp_path / "tiny"

    def build(out: Path) -> None:
        out.mkdir()
        (out / "config.json").write_text("{}")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        build_once(target, build, _has_weights, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tiny.lock"]


def _build_new(out: Path) -> None:
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "model.safetensors").write_bytes(b"new")


def test_an_incomplete_folder_medtune_made_is_rebuilt(tmp_path):
    target = tmp_path / "tiny"
    build_once(target, _build_new, _has_weights, log=lambda _: None)
    assert (target / BUILD_MARKER).is_file()
    (target / "model.safetensors").unlink()  # e.g. a user cleaning up weights by hand
    (target / "model.safetensors.partial").write_bytes(b"x")
    build_once(target, _build_new, _has_weights, log=lambda _: None)
    assert sorted(p.name for p in target.iterdir()) == [BUILD_MARKER, "config.json", "model.safetensors"]


def test_a_folder_medtune_did_not_make_is_left_alone(tmp_path):
    target = tmp_path / "tiny"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    calls = []
    with pytest.raises(MedtuneError, match=r"not made by medtune; it was left as it is") as error:
        build_once(target, lambda out: calls.append(out), _has_weights, log=lambda _: None)
    assert str(target) in str(error.value)
    assert calls == [] and (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
