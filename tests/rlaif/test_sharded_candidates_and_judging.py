"""Candidate generation and judging under 2 processes (torchrun, gloo on CPU) write the files 1 process
writes, also when they resume files an interrupted run left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("sharded_worker.py")


def _run(model: Path, out: Path, processes: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(variable, None)  # the single process must not think it is part of a group
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    done = subprocess.run(
        [*launcher, str(WORKER), str(model), str(out)], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def one_process(tiny_chat_gemma_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rlaif-one")
    _run(tiny_chat_gemma_dir, out, 1)
    candidates = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    judgments = [json.loads(line) for line in (out / "judgments.jsonl").read_text().splitlines()]
    assert [(c["prompt_id"], c["sample"]) for c in candidates] == [(f"p{i}", k) for i in range(7) for k in (0, 1)]
    assert len({c["text"] for c in candidates}) > 7  # sampled, distinct texts: equality below means something
    assert [j["id"] for j in judgments] == [c["id"] for c in candidates]
    assert len({j["score"] for j in judgments}) > 1
    return out


def test_two_processes_write_the_candidates_and_judgments_of_one(tiny_chat_gemma_dir, one_process, tmp_path):
    _run(tiny_chat_gemma_dir, tmp_path, 2)
    for name in ("candidates.jsonl", "judgments.jsonl"):
        assert (tmp_path / name).read_bytes() == (one_process / name).read_bytes(), name
    reference = json.loads((one_process / "returned-rank0.json").read_text())
    for rank in (0, 1):  # every process gets every judgment, in item order
        assert json.loads((tmp_path / f"returned-rank{rank}.json").read_text()) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "candidates.jsonl",
        "judgments.jsonl",
        "returned-rank0.json",
        "returned-rank1.json",
    ]  # no per-process or temporary files left


def test_two_processes_resume_interrupted_files_to_the_same_result(tiny_chat_gemma_dir, one_process, tmp_path):
    candidates = (one_process / "candidates.jsonl").read_bytes().split(b"\n")
    judgments = (one_process / "judgments.jsonl").read_bytes().split(b"\n")
    # a run killed while appending: 3 prompts complete, the 4th with one of its 2 rows and a torn line
    (tmp_path / "candidates.jsonl").write_bytes(b"\n".join(candidates[:7]) + b"\n" + candidates[7][:40])
    (tmp_path / "judgments.jsonl").write_bytes(b"\n".join(judgments[:4]) + b"\n" + judgments[4][:30])
    _run(tiny_chat_gemma_dir, tmp_path, 2)
    for name in ("candidates.jsonl", "judgments.jsonl"):
        assert (tmp_path / name).read_bytes() == (one_process / name).read_bytes(), name
