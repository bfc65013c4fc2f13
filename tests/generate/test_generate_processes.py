"""``medtune generate`` under 2 processes (torchrun, gloo on CPU): the answers file equals 1 process's,
also when the 2-process run resumes an interrupted file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROMPTS = [
    {"id": "a", "prompt": "What lowers a fever?"},
    {"id": "b", "messages": [{"role": "user", "content": "My knee hurts when I climb stairs."}]},
    {"id": "c", "prompt": "Hi"},
    {"id": "d", "prompt": "Is ibuprofen safe with food?"},
    {"id": "e", "prompt": "How much water should an adult drink each day when it is hot?"},
    {"id": "f", "prompt": "Fever"},
    {"id": "g", "prompt": "Can a child take aspirin?"},
]  # 7 prompts: 2 processes get shares of 4 and 3, batch 2: the second process sits out the last gather


def _generate(model: Path, data: Path, out: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(variable, None)  # the single process must not think it is part of a group
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    args = ["--model", str(model), "--data", str(data), "--out", str(out), "--dtype", "float32"]
    args += ["--batch-size", "2", "--max-new-tokens", "6", *extra]
    done = subprocess.run(
        [*launcher, "-m", "medtune.cli", "generate", *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen-processes") / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PROMPTS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def one_process(tiny_chatml_dir, prompts) -> bytes:
    out = prompts.parent / "one.jsonl"
    _generate(tiny_chatml_dir, prompts, out, 1)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in rows] == [p["id"] for p in PROMPTS]
    assert len({row["output"] for row in rows}) > 1  # different prompts, different answers: equality means something
    return out.read_bytes()


def test_two_processes_write_the_file_one_process_writes(tiny_chatml_dir, prompts, one_process, tmp_path):
    out = tmp_path / "two.jsonl"
    done = _generate(tiny_chatml_dir, prompts, out, 2)
    assert out.read_bytes() == one_process  # greedy: identical text, in input order
    assert done.stderr.count("7 prompts: 7 answered now") == 1  # one summary, from the main process
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.jsonl"]  # no per-process leftovers


def test_two_processes_resume_an_interrupted_file_to_the_same_answers(tiny_chatml_dir, prompts, one_process, tmp_path):
    lines = one_process.split(b"\n")
    out = tmp_path / "answers.jsonl"
    # what a run killed mid-write leaves: three acknowledged rows (not in input order) and half a row
    out.write_bytes(lines[4] + b"\n" + lines[0] + b"\n" + lines[2] + b"\n" + lines[5][: len(lines[5]) // 2])
    done = _generate(tiny_chatml_dir, prompts, out, 2)
    assert "Skipping 3 of 7 prompts" in done.stderr and "half-written last line" in done.stderr
    assert "7 prompts: 4 answered now, 3 skipped" in " ".join(done.stderr.split())
    assert out.read_bytes() == one_process


def test_two_processes_sample_the_same_answers_as_one(tiny_chatml_dir, prompts, tmp_path):
    sampled = ("--temperature", "0.9", "--num-return-sequences", "2", "--seed", "7")
    _generate(tiny_chatml_dir, prompts, tmp_path / "one.jsonl", 1, *sampled)
    _generate(tiny_chatml_dir, prompts, tmp_path / "two.jsonl", 2, *sampled)
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
