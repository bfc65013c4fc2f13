"""Data-parallel training: 2 processes (torchrun, gloo on CPU) with batch B train exactly as 1 process
with batch 2B (issue 10's acceptance test), and only the main process writes checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("ddp_worker.py")
STEPS = 3


def _run(command: list[str], out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    for variable in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(variable, None)  # the single process must not think it is part of a group
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, demo_pairs) -> Path:
    path = tmp_path_factory.mktemp("ddp-pairs") / "pairs.json"
    path.write_text(json.dumps([{"en": p.src, "es": p.tgt} for p in demo_pairs[: 4 * STEPS]]))
    return path


def test_two_processes_give_the_per_step_losses_of_one_with_the_doubled_batch(tmp_path, tiny_gemma_dir, pairs_file):
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir()
    double.mkdir()
    args = [str(tiny_gemma_dir), str(pairs_file)]
    _run([sys.executable, str(WORKER), *args, "4", str(STEPS), str(single)], single)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _run([*torchrun, str(WORKER), *args, "2", str(STEPS), str(double)], double)

    one = json.loads((single / "rank0.json").read_text())
    ranks = [json.loads((double / f"rank{r}.json").read_text()) for r in (0, 1)]
    reference = [loss for _, loss in one["loss_history"]]
    assert [step for step, _ in one["loss_history"]] == [1, 2, 3]
    assert len(set(reference)) == STEPS  # training moved the loss, so equal histories mean equal updates
    for rank in ranks:
        assert [step for step, _ in rank["loss_history"]] == [1, 2, 3]
        assert [loss for _, loss in rank["loss_history"]] == pytest.approx(reference, abs=1e-4)
        # every rank reports the whole global batch: tokens summed over ranks equal the single process's
        assert (rank["input_tokens"], rank["target_tokens"]) == (one["input_tokens"], one["target_tokens"])
    assert (single / "ckpt-rank0" / "last" / "state.pt").is_file()
    assert (double / "ckpt-rank0" / "last" / "state.pt").is_file()
    assert not (double / "ckpt-rank1").exists()  # only the main process writes checkpoints


@pytest.mark.parametrize(("n_items", "n_ranks"), [(8, 2), (7, 2), (1, 2), (10, 3), (5, 1)])
def test_rank_slices_cover_the_global_batch_once_in_order(n_items, n_ranks):
    from medtune.train.distributed import rank_slice

    items = list(range(n_items))
    slices = [rank_slice(items, rank, n_ranks) for rank in range(n_ranks)]
    assert sum(slices, []) == items  # contiguous, in rank order, nothing twice or missing
    assert max(map(len, slices)) - min(map(len, slices)) <= 1


def test_a_rank_share_too_small_for_the_objective_is_refused_before_training():
    from medtune.errors import MedtuneError
    from medtune.train.loop import LoopConfig, _check_micro_batches
    from medtune.train.objectives import KTOObjective

    cfg = LoopConfig(batch_size=2, grad_accum=1, lr=1e-3, seed=0)
    kto = KTOObjective()
    _check_micro_batches(kto, cfg, effective=4, n_ranks=2, n_train=8, n_dev=0)  # 2 steps of 2 + 2
    _check_micro_batches(kto, cfg, effective=4, n_ranks=1, n_train=7, n_dev=0)  # one process: last step 3
    with pytest.raises(MedtuneError, match="x processes"):
        # 2 processes: the last step's 3 examples split 2 + 1, and KTO needs 2 per micro-batch
        _check_micro_batches(kto, cfg, effective=4, n_ranks=2, n_train=7, n_dev=0)
