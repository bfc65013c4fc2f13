"""Data-parallel training under ``accelerate launch``: 2 processes (gloo on CPU) with batch B train
exactly as 1 process with batch 2B (issue 10's acceptance tests) for SFT, DPO, KTO and the
reward-weighted objective, and only the main process writes checkpoints."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from launching import launch_command, run_ok

WORKER = Path(__file__).with_name("ddp_worker.py")
STEPS = 3
BATCH = 2  # per process; the single process trains with 2 x BATCH
OBJECTIVES = ("sft", "dpo", "kto", "reward-weighted")
RESUME = ("sft-dropout", "sft-dropout-resumed")  # per-rank random streams: equal only if each is restored


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_gemma_dir, demo_pairs) -> tuple[Path, Path]:
    """(the single process's output folder, the 2 processes' output folder), every objective trained in both."""
    folder = tmp_path_factory.mktemp("ddp")
    rows = folder / "rows.json"
    # 2 x STEPS x 2B rows: DPO and KTO use half of them as answers to the other half
    rows.write_text(json.dumps([{"en": p.src, "es": p.tgt} for p in demo_pairs[: 4 * STEPS * BATCH]]))
    single, double = folder / "single", folder / "double"
    single.mkdir()
    double.mkdir()
    args = [str(tiny_gemma_dir), str(rows)]
    run_ok([sys.executable, str(WORKER), *args, ",".join(OBJECTIVES), str(2 * BATCH), str(STEPS), str(single)])
    run_ok([*launch_command(), str(WORKER), *args, ",".join(OBJECTIVES + RESUME), str(BATCH), str(STEPS), str(double)])
    return single, double


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_two_processes_give_the_per_step_losses_of_one_with_the_doubled_batch(runs, objective):
    single, double = runs
    one = json.loads((single / f"rank0-{objective}.json").read_text())
    ranks = [json.loads((double / f"rank{r}-{objective}.json").read_text()) for r in (0, 1)]
    reference = [loss for _, loss in one["loss_history"]]
    assert [step for step, _ in one["loss_history"]] == [1, 2, 3]
    assert len(set(reference)) == STEPS  # training moved the loss, so equal histories mean equal updates
    for rank in ranks:
        assert [step for step, _ in rank["loss_history"]] == [1, 2, 3]
        assert [loss for _, loss in rank["loss_history"]] == pytest.approx(reference, abs=1e-4)
        # the objective's figures (DPO's rewards, KTO's reference point, ...) cover the global batch too
        for (step, figures), (ref_step, ref_figures) in zip(rank["metric_history"], one["metric_history"], strict=True):
            assert step == ref_step and figures == pytest.approx(ref_figures, abs=1e-4)
        # every rank reports the whole global batch: tokens summed over ranks equal the single process's
        assert (rank["input_tokens"], rank["target_tokens"]) == (one["input_tokens"], one["target_tokens"])
    assert (single / f"ckpt-rank0-{objective}" / "last" / "state.pt").is_file()
    assert (double / f"ckpt-rank0-{objective}" / "last" / "state.pt").is_file()
    assert not (double / f"ckpt-rank1-{objective}").exists()  # only the main process writes checkpoints


def test_each_process_resumes_with_its_own_random_state(runs):
    """With dropout, the 2-process run stopped after step 2 and resumed logs exactly the losses of the
    uninterrupted run: every rank got its own random state back from the checkpoint."""
    import torch

    _, double = runs
    whole = json.loads((double / "rank0-sft-dropout.json").read_text())
    resumed = json.loads((double / "rank0-sft-dropout-resumed.json").read_text())
    assert [step for step, _ in resumed["loss_history"]] == [1, 2, 3]
    assert [loss for _, loss in resumed["loss_history"]] == pytest.approx(
        [loss for _, loss in whole["loss_history"]], rel=1e-6
    )
    state = torch.load(double / "ckpt-rank0-sft-dropout" / "last" / "state.pt", weights_only=False)
    assert state["processes"] == 2 and len(state["rng_by_rank"]) == 2
    assert not torch.equal(state["rng_by_rank"][0]["torch"], state["rng_by_rank"][1]["torch"])  # seed + rank


def test_kto_reference_point_moves_so_its_equality_is_not_trivial(runs):
    single, _ = runs
    one = json.loads((single / "rank0-kto.json").read_text())
    assert one["metric_history"][0][1]["kl"] == 0.0  # policy = reference at the first step
    assert any(figures["kl"] > 0 for _, figures in one["metric_history"][1:])


@pytest.mark.parametrize(("n_items", "n_ranks"), [(8, 2), (7, 2), (1, 2), (10, 3), (5, 1)])
def test_rank_slices_cover_the_global_batch_once_in_order(n_items, n_ranks):
    from medtune.train.distributed import rank_slice

    items = list(range(n_items))
    slices = [rank_slice(items, rank, n_ranks) for rank in range(n_ranks)]
    assert sum(slices, []) == items  # contiguous, in rank order, nothing twice or missing
    assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert [rank_slice(range(n_items), rank, n_ranks) for rank in range(n_ranks)] == [
        range(s[0], s[-1] + 1) if s else range(0) for s in slices
    ]


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


def test_a_checkpoint_resumes_only_with_the_number_of_processes_that_wrote_it(tiny_gemma_dir, demo_pairs, tmp_path):
    """Every rank's random state is kept (rank order) and a rank resumes with its own; a checkpoint of
    one process is refused by a run of two, whose global batches differ."""
    import torch
    from transformers import AutoTokenizer, Gemma3ForCausalLM

    from medtune.errors import MedtuneError
    from medtune.models.adapters import attach_lora
    from medtune.train.loop import LoopConfig, TrainingInterrupted, TrainResult, _load_checkpoint, train_loop

    sys.path.insert(0, str(WORKER.parent))
    from ddp_worker import training_items

    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma_dir)
    rows = [{"en": p.src, "es": p.tgt} for p in demo_pairs[:8]]
    model = attach_lora(Gemma3ForCausalLM.from_pretrained(tiny_gemma_dir, dtype=torch.float32), 4, 8, 0.0, ["q_proj"])
    cfg = LoopConfig(batch_size=2, grad_accum=1, lr=1e-3, seed=0, max_steps=3, stop_after=1)
    with pytest.raises(TrainingInterrupted):
        train_loop(model, training_items(tokenizer, rows, "sft"), [], cfg, 0, False, tmp_path, log=lambda *_: None)
    state = torch.load(tmp_path / "last" / "state.pt", weights_only=False)
    assert state["processes"] == 1 and len(state["rng_by_rank"]) == 1
    assert torch.equal(state["rng_by_rank"][0]["torch"], state["rng"]["torch"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    with pytest.raises(MedtuneError, match=r"1 process\(es\).*this run has 2.*--num_processes 1"):
        _load_checkpoint(tmp_path / "last", model, optimizer, scheduler, TrainResult(0, 0.0, None), 1, 2)
