"""FSDP2 in medtune's loop under ``accelerate launch`` with an FSDP config (2 processes, gloo on CPU):
sharded training gives the per-step losses of 1 process with the doubled batch (LoRA, full fine-tuning,
a rank with nothing to do in a step, KTO), the model saved after it equals the single process's, and a
run resumes from its checkpoint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from launching import launch_command, run_ok
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("fsdp_worker.py")
FSDP2_CPU = Path(__file__).with_name("fsdp2-cpu.yaml")
STEPS = 3
VARIANTS = ("lora", "full", "lora-uneven", "kto")
LR = 5e-3  # fsdp_worker.py's learning rate


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_gemma_dir, demo_pairs) -> tuple[Path, Path]:
    """(the single process's output folder, the 2 FSDP processes' output folder), every variant trained in both."""
    folder = tmp_path_factory.mktemp("fsdp")
    rows = folder / "rows.json"
    rows.write_text(json.dumps([{"en": p.src, "es": p.tgt} for p in demo_pairs[:12]]))
    single, sharded = folder / "single", folder / "sharded"
    single.mkdir()
    sharded.mkdir()
    args = [str(tiny_gemma_dir), str(rows)]
    run_ok([sys.executable, str(WORKER), *args, ",".join(VARIANTS), "2", str(STEPS), str(single)])
    launch = launch_command(FSDP2_CPU)
    resumed = ",".join((*VARIANTS, "lora-resumed"))  # its reference is the single process's lora
    run_ok([*launch, str(WORKER), *args, resumed, "1", str(STEPS), str(sharded)])
    return single, sharded


def test_an_fsdp_run_resumed_from_its_checkpoint_logs_the_losses_of_the_uninterrupted_one(runs):
    """The whole tensors of the checkpoint go back into each rank's shard of the weights and AdamW state."""
    single, sharded = runs
    reference = [loss for _, loss in json.loads((single / "rank0-lora.json").read_text())["loss_history"]]
    for rank in (0, 1):
        resumed = json.loads((sharded / f"rank{rank}-lora-resumed.json").read_text())
        assert [step for step, _ in resumed["loss_history"]] == [1, 2, 3]
        assert [loss for _, loss in resumed["loss_history"]] == pytest.approx(reference, abs=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_fsdp2_gives_the_per_step_losses_of_one_process_with_the_doubled_batch(runs, variant):
    single, sharded = runs
    one = json.loads((single / f"rank0-{variant}.json").read_text())
    reference = [loss for _, loss in one["loss_history"]]
    assert [step for step, _ in one["loss_history"]] == [1, 2, 3]
    assert len(set(reference)) == STEPS  # training moved the loss, so equal histories mean equal updates
    for rank in (0, 1):
        record = json.loads((sharded / f"rank{rank}-{variant}.json").read_text())
        assert [loss for _, loss in record["loss_history"]] == pytest.approx(reference, abs=1e-4)
        assert record["unsharded"]  # the loop hands back a plain model


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_model_saved_after_fsdp_training_equals_the_single_process_one(runs, variant):
    single, sharded = runs
    name = "model.safetensors" if variant == "full" else "adapter_model.safetensors"
    one = load_file(single / f"model-{variant}" / name)
    two = load_file(sharded / f"model-{variant}" / name)
    assert one.keys() == two.keys() and one
    for key, value in one.items():
        assert two[key].shape == value.shape  # whole tensors, not one rank's shard
        difference = (two[key] - value).abs()
        # Adam divides each gradient by its own scale, so summation-order noise on a near-zero gradient
        # can move a lone weight by a fraction of a step (lr 5e-3); every other weight agrees to float noise
        assert float(difference.max()) < LR / 10
        assert float(difference.mean()) < 1e-6


def test_fsdp_checkpoints_hold_whole_tensors_a_single_process_can_load(runs):
    """The periodic checkpoint of step 2 has the single-process layout: the same parameter names and
    shapes, the same values, and an optimizer state a plain AdamW loads."""
    single, sharded = runs
    one = torch.load(single / "ckpt-lora" / "last" / "state.pt", weights_only=False)
    two = torch.load(sharded / "ckpt-lora" / "last" / "state.pt", weights_only=False)
    assert one["step"] == two["step"] == 2 and two["processes"] == 2
    assert one["params"].keys() == two["params"].keys()
    for key, value in one["params"].items():
        torch.testing.assert_close(two["params"][key], value, atol=1e-4, rtol=1e-3)
    for index, state in one["optimizer"]["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert two["optimizer"]["state"][index][key].shape == state[key].shape
            torch.testing.assert_close(two["optimizer"]["state"][index][key], state[key], atol=1e-5, rtol=1e-3)
    params = [torch.nn.Parameter(value.clone()) for value in two["params"].values()]
    torch.optim.AdamW(params).load_state_dict(two["optimizer"])
    assert not (sharded / "ckpt-lora" / "last.tmp").exists()


def test_fsdp_version_1_and_loading_in_one_process_are_refused_with_the_key_to_set(monkeypatch):
    from medtune.errors import MedtuneError
    from medtune.train.fsdp import fsdp_requested

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(MedtuneError, match="fsdp_version: 2"):
        fsdp_requested()
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert fsdp_requested()
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "true")
    with pytest.raises(MedtuneError, match="fsdp_cpu_ram_efficient_loading: false"):
        fsdp_requested()
    monkeypatch.setenv("FSDP_CPU_RAM_EFFICIENT_LOADING", "false")
    assert fsdp_requested()
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    assert not fsdp_requested()


def test_the_gpu_config_is_the_tested_cpu_one_on_gpus():
    """configs/accelerate/fsdp2.yaml asks for what the CPU test ran: FSDP2, weights loaded in every process."""
    from accelerate.commands.config.config_args import load_config_from_file

    gpu = load_config_from_file(str(Path(__file__).parents[2] / "configs" / "accelerate" / "fsdp2.yaml"))
    cpu = load_config_from_file(str(FSDP2_CPU))
    assert gpu.fsdp_config["fsdp_version"] == cpu.fsdp_config["fsdp_version"] == 2
    assert gpu.fsdp_config["fsdp_cpu_ram_efficient_loading"] is False
    assert (gpu.distributed_type, gpu.num_processes, gpu.use_cpu) == (cpu.distributed_type, 2, False)
